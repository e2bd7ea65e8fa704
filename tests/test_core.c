/* test_core.c — status strings, errors, memory accounting, dtype conversions, arena. */
#include "t.h"
#include "wk.h"

int main(void) {
    CHECK(strcmp(wick_status_str(WICK_EFORMAT), "bad file format") == 0, "status string");
    wk_err(WICK_EINVAL, "file %s: field %s", "a.json", "x");
    CHECK(strcmp(wick_last_error(), "file a.json: field x") == 0, "got %s", wick_last_error());
    wk_err_prefix(WICK_EINVAL, "outer");
    CHECK(strcmp(wick_last_error(), "outer: file a.json: field x") == 0, "got %s", wick_last_error());

    size_t before = wick_mem_allocated();
    void *p = wk_malloc(1000, "t");
    CHECK(p && ((uintptr_t)p % 64) == 0, "aligned allocation");
    CHECK(wick_mem_allocated() == before + 1000, "accounting");
    wk_free(p);
    CHECK(wick_mem_allocated() == before, "accounting after free");
    CHECK(wk_malloc((size_t)-1 / 2, "huge") == NULL && strstr(wick_last_error(), "huge"), "huge alloc fails");

    /* bf16 / f16 round trips on exactly representable values, and RNE */
    float vals[] = {0.f, 1.f, -2.5f, 65504.f, 6.103515625e-05f, 5.960464477539063e-08f, -0.f};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        CHECK(wk_f16_to_f32(wk_f32_to_f16(vals[i])) == vals[i], "f16 roundtrip %g", vals[i]);
        CHECK(wk_bf16_to_f32(wk_f32_to_bf16(vals[i])) == wk_bf16_to_f32(wk_f32_to_bf16(vals[i])), "bf16");
    }
    CHECK(wk_f32_to_bf16(1.00390625f) == 0x3f80, "bf16 ties to even");
    CHECK(wk_f32_to_bf16(1.01171875f) == 0x3f82, "bf16 ties to even (odd)");
    CHECK(wk_f32_to_f16(1.0f + 1.0f / 2048) == 0x3c00, "f16 ties to even");
    /* every f16 bit pattern widens then narrows back (excluding NaN payloads) */
    int bad = 0;
    for (uint32_t h = 0; h < 65536; h++) {
        if (((h >> 10) & 0x1f) == 0x1f && (h & 0x3ff)) continue;
        if (wk_f32_to_f16(wk_f16_to_f32((uint16_t)h)) != h) bad++;
    }
    CHECK(bad == 0, "%d f16 patterns do not round trip", bad);

    wk_arena a;
    CHECK_OK(wk_arena_init(&a, 1024, "arena"));
    void *x = wk_arena_alloc(&a, 100), *y = wk_arena_alloc(&a, 100);
    CHECK(x && y && ((uintptr_t)y % 64) == 0 && (uint8_t *)y >= (uint8_t *)x + 100, "arena carve");
    CHECK(wk_arena_alloc(&a, 2000) == NULL && strstr(wick_last_error(), "arena"), "arena full");
    wk_arena_free(&a);
    CHECK(wick_set_threads(2) == 2, "threads");
    return t_summary();
}
