/*
 * adapter_pair.c — placeholder lookup until src/lora/adapter.c provides adapters.
 */
#include "model/model.h"

const wk_lora *wk_adapter_pair(const wick_adapter *a, int l, wk_proj p) {
    (void)a; (void)l; (void)p;
    return NULL;
}
