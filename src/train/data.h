/*
 * data.h — training data: JSONL lines turned into (ids, labels) examples.
 */
#ifndef WK_TRAIN_DATA_H
#define WK_TRAIN_DATA_H
#include "model/model.h"

typedef struct {
    int32_t *ids, *labels; /* (len) labels -100 = not trained */
    int len;
    int line;              /* 1-based line of the file */
} wk_example;

typedef struct {
    wk_example *ex;
    int n;
    int *perm;          /* (n) order of epoch perm_epoch when shuffling */
    int64_t perm_epoch;
} wk_dataset;

/* Reads path: one JSON object per line ({"input_ids","labels"}, {"text"}, {"prompt","completion"},
 * {"messages"}); blank lines are skipped; sequences are cut to seq_len (0 = no limit).
 * Errors name the file and line. */
wick_status wk_data_load(const char *path, wick_model *m, int seq_len, wk_dataset *d);
void wk_data_free(wk_dataset *d);

/* Index into d of the example at global position pos (epoch = pos / n), seeded shuffle per epoch. */
int wk_data_index(wk_dataset *d, int64_t pos, int shuffle, uint64_t seed);
#endif
