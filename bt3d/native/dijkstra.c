/* All-sources Dijkstra on a CSR graph with non-negative float64 weights (bt3d.native).
 *
 * dist[s][v] = min over edges (u, v) of fl(dist[s][u] + w(u, v)), the same fixed point that
 * scipy.sparse.csgraph.dijkstra reaches: every label-setting or label-correcting algorithm that
 * starts from +inf and relaxes with one IEEE double addition per edge gives bitwise the same
 * distances, whatever its queue and whatever the nodes' numbering (see docs/findings/speed.md),
 * so this file must be compiled WITHOUT -ffast-math and without contraction
 * (-ffp-contract=off; there is no multiply here anyway).
 *
 * The graph comes renumbered for memory locality: `order[i]` is the caller's id of node i, and
 * each source's distances are written into the output in the caller's ids. A 4-ary heap with
 * decrease-key (keys and nodes in separate arrays, positions array), one per thread; sources
 * split into contiguous blocks over `threads` POSIX threads.
 */
#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>

typedef struct {
    const int64_t *indptr;
    const int32_t *indices;
    const double *weights;
    const int32_t *order; /* node i is the caller's node order[i] (a permutation) */
    int64_t n;
    int64_t first, last; /* sources [first, last), in the graph's numbering */
    double *out;         /* (n, n) row-major in the caller's numbering */
    int status;
} job_t;

typedef struct {
    double *key;   /* key[i]: tentative distance of the node at heap slot i */
    int32_t *node; /* node[i]: the node at heap slot i */
    int32_t *pos;  /* pos[v]: heap slot of node v, -1 when not in the heap */
} heap_t;

static inline void place(heap_t *h, int32_t i, double key, int32_t node) {
    h->key[i] = key;
    h->node[i] = node;
    h->pos[node] = i;
}

static inline void sift_up(heap_t *h, int32_t i, double key, int32_t node) {
    while (i > 0) {
        int32_t parent = (i - 1) >> 2;
        if (h->key[parent] <= key) break;
        place(h, i, h->key[parent], h->node[parent]);
        i = parent;
    }
    place(h, i, key, node);
}

static inline void sift_down(heap_t *h, int32_t size, double key, int32_t node) {
    int32_t i = 0;
    for (;;) {
        int32_t child = 4 * i + 1;
        if (child >= size) break;
        int32_t end = child + 4 < size ? child + 4 : size;
        int32_t best = child;
        double best_key = h->key[child];
        for (int32_t c = child + 1; c < end; c++)
            if (h->key[c] < best_key) best_key = h->key[best = c];
        if (best_key >= key) break;
        place(h, i, best_key, h->node[best]);
        i = best;
    }
    place(h, i, key, node);
}

static void *run_job(void *arg) {
    job_t *job = (job_t *)arg;
    int64_t n = job->n;
    size_t count = (size_t)(n > 0 ? n : 1);
    heap_t h = {malloc(sizeof(double) * count), malloc(sizeof(int32_t) * count),
                malloc(sizeof(int32_t) * count)};
    double *dist = malloc(sizeof(double) * count); /* one source's, in the graph's ids */
    if (!h.key || !h.node || !h.pos || !dist) {
        free(h.key);
        free(h.node);
        free(h.pos);
        free(dist);
        job->status = 1;
        return NULL;
    }
    const int64_t *indptr = job->indptr;
    const int32_t *indices = job->indices;
    const double *weights = job->weights;
    const int32_t *order = job->order;
    for (int64_t s = job->first; s < job->last; s++) {
        for (int64_t v = 0; v < n; v++) {
            dist[v] = INFINITY;
            h.pos[v] = -1;
        }
        dist[s] = 0.0;
        place(&h, 0, 0.0, (int32_t)s);
        int32_t size = 1;
        while (size > 0) {
            int32_t u = h.node[0];
            double du = h.key[0];
            h.pos[u] = -1; /* settled: dist[u] <= any later alt, so it is never re-entered */
            size--;
            if (size > 0) sift_down(&h, size, h.key[size], h.node[size]);
            for (int64_t e = indptr[u]; e < indptr[u + 1]; e++) {
                int32_t v = indices[e];
                double alt = du + weights[e];
                if (alt < dist[v]) {
                    dist[v] = alt;
                    int32_t at = h.pos[v];
                    if (at < 0) at = size++;
                    sift_up(&h, at, alt, v);
                }
            }
        }
        double *row = job->out + (int64_t)order[s] * n;
        for (int64_t v = 0; v < n; v++) row[order[v]] = dist[v];
    }
    free(h.key);
    free(h.node);
    free(h.pos);
    free(dist);
    job->status = 0;
    return NULL;
}

/* Returns 0 on success, 1 when memory or a thread could not be had. */
int bt3d_dijkstra_all(const int64_t *indptr, const int32_t *indices, const double *weights,
                      const int32_t *order, int64_t n, double *out, int threads) {
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
        jobs[t] = (job_t){indptr, indices, weights, order, n, n * t / threads,
                          n * (t + 1) / threads, out, 1};
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
