/* All-sources Dijkstra on a CSR graph with non-negative float64 weights (bt3d.geodesic_native).
 *
 * dist[s][v] = min over edges (u, v) of fl(dist[s][u] + w(u, v)), the same fixed point that
 * scipy.sparse.csgraph.dijkstra reaches: every label-setting or label-correcting algorithm that
 * starts from +inf and relaxes with one IEEE double addition per edge gives bitwise the same
 * distances (see docs/findings/speed.md), so this file must be compiled WITHOUT -ffast-math
 * and without contraction (-ffp-contract=off; there is no multiply here anyway).
 *
 * Binary heap with decrease-key (positions array), one heap per thread, sources split into
 * contiguous row blocks over `threads` POSIX threads.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct {
    const int64_t *indptr;
    const int32_t *indices;
    const double *weights;
    int64_t n;
    int64_t first, last; /* sources [first, last) */
    double *out;         /* (n, n) row-major; rows first..last-1 are written */
    int status;
} job_t;

typedef struct {
    double key;
    int32_t node;
} entry_t;

/* heap of (key, node) entries; pos[node] = its index in the heap */
static void sift_up(entry_t *heap, int32_t *pos, int64_t i, entry_t item) {
    while (i > 0) {
        int64_t parent = (i - 1) >> 1;
        if (heap[parent].key <= item.key) break;
        heap[i] = heap[parent];
        pos[heap[i].node] = (int32_t)i;
        i = parent;
    }
    heap[i] = item;
    pos[item.node] = (int32_t)i;
}

static void sift_down(entry_t *heap, int32_t *pos, int64_t size, entry_t item) {
    int64_t i = 0;
    for (;;) {
        int64_t child = 2 * i + 1;
        if (child >= size) break;
        if (child + 1 < size && heap[child + 1].key < heap[child].key) child++;
        if (heap[child].key >= item.key) break;
        heap[i] = heap[child];
        pos[heap[i].node] = (int32_t)i;
        i = child;
    }
    heap[i] = item;
    pos[item.node] = (int32_t)i;
}

static void *run_job(void *arg) {
    job_t *job = (job_t *)arg;
    int64_t n = job->n;
    entry_t *heap = malloc(sizeof(entry_t) * (size_t)(n > 0 ? n : 1));
    int32_t *pos = malloc(sizeof(int32_t) * (size_t)(n > 0 ? n : 1));
    if (!heap || !pos) {
        free(heap);
        free(pos);
        job->status = 1;
        return NULL;
    }
    const int64_t *indptr = job->indptr;
    const int32_t *indices = job->indices;
    const double *weights = job->weights;
    /* pos[v] = -1: not in the heap (never reached, or settled: then dist[v] <= any alt) */
    for (int64_t s = job->first; s < job->last; s++) {
        double *dist = job->out + s * n;
        for (int64_t v = 0; v < n; v++) {
            dist[v] = INFINITY;
            pos[v] = -1;
        }
        dist[s] = 0.0;
        heap[0] = (entry_t){0.0, (int32_t)s};
        pos[s] = 0;
        int64_t size = 1;
        while (size > 0) {
            int32_t u = heap[0].node;
            double du = heap[0].key;
            pos[u] = -1;
            size--;
            if (size > 0) sift_down(heap, pos, size, heap[size]);
            for (int64_t e = indptr[u]; e < indptr[u + 1]; e++) {
                int32_t v = indices[e];
                double alt = du + weights[e];
                if (alt < dist[v]) {
                    dist[v] = alt;
                    int64_t at = pos[v];
                    if (at < 0) at = size++;
                    sift_up(heap, pos, at, (entry_t){alt, v});
                }
            }
        }
    }
    free(heap);
    free(pos);
    job->status = 0;
    return NULL;
}

/* Returns 0 on success, 1 when memory or a thread could not be had. */
int bt3d_dijkstra_all(const int64_t *indptr, const int32_t *indices, const double *weights,
                      int64_t n, double *out, int threads) {
    if (threads < 1) threads = 1;
    if (threads > n) threads = (int)(n > 0 ? n : 1);
    job_t *jobs = calloc((size_t)threads, sizeof(job_t));
    pthread_t *tids = calloc((size_t)threads, sizeof(pthread_t));
    int *started = calloc((size_t)threads, sizeof(int));
    if (!jobs || !tids || !started) {
        free(jobs);
        free(tids);
        free(started);
        return 1;
    }
    int failed = 0;
    for (int t = 0; t < threads; t++) {
        jobs[t] = (job_t){indptr, indices, weights, n, n * t / threads, n * (t + 1) / threads,
                          out, 1};
        if (t + 1 < threads) {
            started[t] = pthread_create(&tids[t], NULL, run_job, &jobs[t]) == 0;
            if (!started[t]) run_job(&jobs[t]); /* no thread: do the block here */
        }
    }
    run_job(&jobs[threads - 1]);
    for (int t = 0; t + 1 < threads; t++)
        if (started[t]) pthread_join(tids[t], NULL);
    for (int t = 0; t < threads; t++) failed |= jobs[t].status;
    free(jobs);
    free(tids);
    free(started);
    return failed;
}
