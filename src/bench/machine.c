/*
 * machine.c — what a benchmark result was measured on and built from: CPU model,
 * cores, SIMD flags, memory, OS, GPU and driver (nvidia-smi, when CUDA is used),
 * the git commit (from the build, else asked of git at run time, else "unknown")
 * and the compiler flags.
 */
#define _GNU_SOURCE
#include "bench.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/utsname.h>
#include <unistd.h>

#ifndef WICK_GIT_COMMIT
#define WICK_GIT_COMMIT ""
#endif
#ifndef WICK_GIT_DIRTY
#define WICK_GIT_DIRTY 0
#endif
#ifndef WICK_BUILD_FLAGS
#define WICK_BUILD_FLAGS ""
#endif
#ifndef WICK_BUILD_TYPE
#define WICK_BUILD_TYPE ""
#endif
#ifndef WICK_SOURCE_DIR
#define WICK_SOURCE_DIR ""
#endif

/* Runs a shell command and returns its first output line (trimmed) in buf, or "" on failure. */
static char *first_line(const char *cmd, char *buf, size_t cap) {
    buf[0] = 0;
    FILE *p = popen(cmd, "r");
    if (!p) return buf;
    if (!fgets(buf, (int)cap, p)) buf[0] = 0;
    pclose(p);
    size_t n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ')) buf[--n] = 0;
    return buf;
}

json_t *wk_bench_git_json(void) {
    const char *commit = WICK_GIT_COMMIT;
    if (*commit)
        return json_pack("{s:s, s:b, s:s}", "commit", commit, "dirty", WICK_GIT_DIRTY != 0, "source", "build");
    char cmd[1200], head[128];
    if (*WICK_SOURCE_DIR) {
        snprintf(cmd, sizeof cmd, "git -C '%s' rev-parse HEAD 2>/dev/null", WICK_SOURCE_DIR);
        first_line(cmd, head, sizeof head);
        if (strlen(head) == 40) return json_pack("{s:s, s:s}", "commit", head, "source", "runtime");
    }
    return json_pack("{s:s, s:s}", "commit", "unknown", "source", "none");
}

#if defined(__clang__)
#define COMPILER "clang " __clang_version__
#elif defined(__GNUC__)
#define COMPILER "gcc " __VERSION__
#else
#define COMPILER "unknown"
#endif

json_t *wk_bench_build_json(void) {
    json_t *simd = json_array();
#ifdef __AVX512F__
    json_array_append_new(simd, json_string("avx512f"));
#endif
#ifdef __AVX2__
    json_array_append_new(simd, json_string("avx2"));
#endif
#ifdef __FMA__
    json_array_append_new(simd, json_string("fma"));
#endif
#ifdef __F16C__
    json_array_append_new(simd, json_string("f16c"));
#endif
#ifdef __ARM_NEON
    json_array_append_new(simd, json_string("neon"));
#endif
    int sanitize = 0, cuda = 0;
#if defined(__SANITIZE_ADDRESS__)
    sanitize = 1;
#endif
#ifdef WICK_HAVE_CUDA
    cuda = 1;
#endif
    return json_pack("{s:s, s:s, s:s, s:o, s:b, s:b, s:b}", "type", WICK_BUILD_TYPE, "flags", WICK_BUILD_FLAGS,
                     "compiler", COMPILER, "simd_compiled", simd, "sanitizers", sanitize,
                     "cuda", cuda, "openmp",
#ifdef _OPENMP
                     1
#else
                     0
#endif
    );
}

/* Copies the value after "key\t: " of the first matching /proc/cpuinfo line. */
static int cpuinfo_field(const char *key, char *buf, size_t cap) {
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return 0;
    char *line = NULL;
    size_t n = 0, kl = strlen(key);
    int found = 0;
    while (!found && getline(&line, &n, f) > 0) {
        if (strncmp(line, key, kl) != 0) continue;
        char *c = strchr(line, ':');
        if (!c) continue;
        c++;
        while (*c == ' ') c++;
        snprintf(buf, cap, "%s", c);
        size_t l = strlen(buf);
        if (l && buf[l - 1] == '\n') buf[l - 1] = 0;
        found = 1;
    }
    free(line);
    fclose(f);
    return found;
}

static json_t *simd_flags(void) {
    static const char *const wanted[] = {"sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl",
                                         "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16",
                                         "asimd", "sve", "sve2", "bf16", "i8mm"};
    static char flags[8192];
    json_t *a = json_array();
    if (!cpuinfo_field("flags", flags, sizeof flags) && !cpuinfo_field("Features", flags, sizeof flags)) return a;
    for (size_t i = 0; i < WK_ARRAY_LEN(wanted); i++) {
        size_t wl = strlen(wanted[i]);
        for (const char *p = flags; (p = strstr(p, wanted[i])) != NULL; p += wl) {
            int start = p == flags || p[-1] == ' ', end = p[wl] == 0 || p[wl] == ' ';
            if (start && end) {
                json_array_append_new(a, json_string(wanted[i]));
                break;
            }
        }
    }
    return a;
}

static long long mem_total_bytes(void) {
    char buf[128];
    FILE *f = fopen("/proc/meminfo", "r");
    long long kb = 0;
    if (!f) return 0;
    while (fgets(buf, sizeof buf, f))
        if (sscanf(buf, "MemTotal: %lld kB", &kb) == 1) break;
    fclose(f);
    return kb * 1024;
}

static json_t *gpu_json(void) {
    char line[512];
    first_line("nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader,nounits 2>/dev/null",
               line, sizeof line);
    if (!*line) return json_null();
    char name[256] = "", driver[64] = "";
    long long mib = 0;
    char *c1 = strchr(line, ','), *c2 = c1 ? strchr(c1 + 1, ',') : NULL;
    if (!c1 || !c2) return json_pack("{s:s}", "name", line);
    snprintf(name, sizeof name, "%.*s", (int)(c1 - line), line);
    snprintf(driver, sizeof driver, "%.*s", (int)(c2 - c1 - 1), c1 + 1);
    mib = atoll(c2 + 1);
    return json_pack("{s:s, s:s, s:I}", "name", name, "driver", driver + (driver[0] == ' '), "memory_bytes",
                     (json_int_t)(mib * 1024 * 1024));
}

json_t *wk_bench_machine_json(int with_gpu) {
    char model[256] = "unknown";
    if (!cpuinfo_field("model name", model, sizeof model)) cpuinfo_field("Model", model, sizeof model);
    struct utsname u;
    char os[300] = "unknown";
    if (uname(&u) == 0) snprintf(os, sizeof os, "%s %s %s", u.sysname, u.release, u.machine);
    char host[256] = "";
    gethostname(host, sizeof host - 1);
    return json_pack("{s:s, s:i, s:o, s:I, s:s, s:s, s:o}", "cpu", model, "cores",
                     (int)sysconf(_SC_NPROCESSORS_ONLN), "simd", simd_flags(), "memory_bytes",
                     (json_int_t)mem_total_bytes(), "os", os, "hostname", host, "gpu",
                     with_gpu ? gpu_json() : json_null());
}
