/*
 * gateway.compat._confluent: produce a whole read's frames into the
 * librdkafka handle of a confluent-kafka Producer in one call.
 *
 * Optional (setup.py builds it when a compiler is there); the pure-Python
 * path is the reference.  Everything this file relies on beyond public APIs
 * is listed, checked and tested in gateway/compat/confluent_kafka.py and
 * tests/compat/test_confluent_kafka.py:
 *
 *  - confluent-kafka's Handle struct starts with PyObject_HEAD then the
 *    rd_kafka_t pointer (checked at bind time: librdkafka's opaque of that
 *    handle is the Producer object itself, as confluent-kafka sets it);
 *  - confluent-kafka's delivery report trampoline returns at once for a
 *    record whose per-message opaque is NULL (no Python, no GIL): the
 *    records produced here carry none, and this file is also a librdkafka
 *    plugin (conf_init, loaded through plugin.library.paths) whose
 *    on_acknowledgement interceptor copies every one of them that fails,
 *    for FastProducer.failures() to hand to the gateway;
 *  - a tracked record (produceTracked, ack mode) carries a tagged opaque
 *    (low bit set; confluent-kafka's own per-record states are malloc'd,
 *    so theirs is clear) that the interceptor takes and sets to NULL
 *    before librdkafka queues the delivery report (librdkafka calls
 *    on_acknowledgement for every record before its report: rd_kafka_dr_msgq0),
 *    so the trampoline returns at once for these too;
 *  - librdkafka's ABI for the few functions below (rdkafka.h), looked up
 *    with dlsym in the very copy confluent-kafka loaded (no second
 *    librdkafka in the process).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dlfcn.h>
#include <limits.h>
#include <stdio.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

/* The subset of rdkafka.h used, by value: no librdkafka headers needed. */
typedef struct rd_kafka_s rd_kafka_t;
typedef struct rd_kafka_topic_s rd_kafka_topic_t;
typedef struct rd_kafka_headers_s rd_kafka_headers_t;
typedef struct rd_kafka_conf_s rd_kafka_conf_t;
typedef int rd_kafka_resp_err_t;

/* rd_kafka_message_t, public in rdkafka.h. */
typedef struct {
        rd_kafka_resp_err_t err;
        rd_kafka_topic_t *rkt;
        int32_t partition;
        void *payload;
        size_t len;
        void *key;
        size_t key_len;
        int64_t offset;
        void *_private;
} rd_kafka_message_t;

typedef rd_kafka_resp_err_t(on_new_t)(rd_kafka_t *, const rd_kafka_conf_t *,
                                      void *, char *, size_t);
typedef rd_kafka_resp_err_t(on_conf_dup_t)(rd_kafka_conf_t *,
                                           const rd_kafka_conf_t *, size_t,
                                           const char **, void *);
typedef rd_kafka_resp_err_t(on_conf_destroy_t)(void *);
typedef rd_kafka_resp_err_t(on_acknowledgement_t)(rd_kafka_t *,
                                                  rd_kafka_message_t *, void *);

enum {
        VTYPE_END = 0,
        VTYPE_TOPIC,
        VTYPE_RKT,
        VTYPE_PARTITION,
        VTYPE_VALUE,
        VTYPE_KEY,
        VTYPE_OPAQUE,
        VTYPE_MSGFLAGS,
        VTYPE_TIMESTAMP,
        VTYPE_HEADER,
        VTYPE_HEADERS,
};
#define MSG_F_COPY   0x2
#define ERR__QUEUE_FULL (-184)
#define PARTITION_UA ((int32_t)-1)

typedef struct {
        rd_kafka_resp_err_t (*producev)(rd_kafka_t *, ...);
        rd_kafka_topic_t *(*topic_new)(rd_kafka_t *, const char *, void *);
        void (*topic_destroy)(rd_kafka_topic_t *);
        rd_kafka_headers_t *(*headers_new)(size_t);
        rd_kafka_resp_err_t (*header_add)(rd_kafka_headers_t *,
                                          const char *,
                                          ssize_t,
                                          const void *,
                                          ssize_t);
        rd_kafka_headers_t *(*headers_copy)(const rd_kafka_headers_t *);
        void (*headers_destroy)(rd_kafka_headers_t *);
        void *(*opaque)(const rd_kafka_t *);
        const char *(*topic_name)(const rd_kafka_topic_t *);
        rd_kafka_resp_err_t (*message_headers)(const rd_kafka_message_t *,
                                               rd_kafka_headers_t **);
        rd_kafka_resp_err_t (*header_get_all)(const rd_kafka_headers_t *,
                                              size_t,
                                              const char **,
                                              const void **,
                                              size_t *);
        rd_kafka_resp_err_t (*add_on_new)(rd_kafka_conf_t *, const char *,
                                          on_new_t *, void *);
        rd_kafka_resp_err_t (*add_on_conf_dup)(rd_kafka_conf_t *, const char *,
                                               on_conf_dup_t *, void *);
        rd_kafka_resp_err_t (*add_on_conf_destroy)(rd_kafka_conf_t *,
                                                   const char *,
                                                   on_conf_destroy_t *, void *);
        rd_kafka_resp_err_t (*add_on_acknowledgement)(rd_kafka_t *,
                                                      const char *,
                                                      on_acknowledgement_t *,
                                                      void *);
} api_t;

/* The librdkafka confluent-kafka loaded: looked up once, by prepare(). */
static api_t api;
static void *library; /* dlopen handle, kept for the process's life */
static char *library_path;

#define PLUGIN_NAME "gateway.compat._confluent"

/* One failed record, copied out of librdkafka's report. */
typedef struct failure {
        struct failure *next;
        rd_kafka_resp_err_t err;
        char *topic;
        char *key; /* NULL: no key */
        size_t key_len;
        char *value;
        size_t len;
        size_t nheaders;
        char **names;
        char **values; /* NULL: a header without a value */
        size_t *sizes;
} failure_t;

/* A tracked record's per-message opaque (tagged with TICKET_TAG): whose
 * record it is and its number.  The tracker has one reference per record in
 * flight, taken at produce, given back by tracked(). */
typedef struct {
        PyObject *tracker;
        long long seq;
} ticket_t;
#define TICKET_TAG ((uintptr_t)1)

/* The outcome of tracked records, in the order librdkafka reported them:
 * a run of confirmed numbers of one tracker, or one failure. */
typedef struct outcome {
        struct outcome *next;
        PyObject *tracker; /* one reference per record of the run */
        long long first, last;
        failure_t *failure; /* NULL: confirmed */
} outcome_t;

/* What the plugin keeps per librdkafka configuration (and so per handle):
 * made by conf_init (or on_conf_dup), given its handle by on_new, freed
 * when both the configuration is destroyed (the handle's very last step)
 * and no FastProducer holds it. */
typedef struct watch {
        struct watch *next; /* every watch with a handle */
        pthread_mutex_t lock;
        int refs;
        rd_kafka_t *rk;
        int acking;   /* the on_acknowledgement interceptor is in place */
        int draining; /* a FastProducer takes the failures */
        failure_t *head, **tail;
        long lost; /* failures that could not be copied */
        outcome_t *outcomes, *last; /* tracked records' outcomes */
        long untracked; /* tracked outcomes that could not be kept */
} watch_t;

static pthread_mutex_t watches_lock = PTHREAD_MUTEX_INITIALIZER;
static watch_t *watches;

/* Set while this thread is in produceMany: a record librdkafka refuses
 * there is reported to its interceptors at once, but it was not taken, and
 * the caller hands it to the pure-Python path. */
static __thread int producing;

typedef struct {
        PyObject_HEAD PyObject *producer; /* the confluent Producer (kept alive) */
        PyObject *fallback;  /* its produce: for what this file does not take */
        PyObject *error;     /* confluent_kafka.KafkaError */
        PyObject *exception; /* confluent_kafka.KafkaException */
        rd_kafka_t *rk;
        watch_t *watch;
} FastProducer;

/* Where confluent-kafka's Handle keeps its rd_kafka_t *: right after the
 * object header. */
static rd_kafka_t *handle_rk(PyObject *producer) {
        return *(rd_kafka_t **)((char *)producer + sizeof(PyObject));
}

/* ------------------------------------------------------------------ */
/* Failed records: copied by the interceptor, drained by failures().   */

static void failure_free(failure_t *f) {
        size_t i;
        for (i = 0; i < f->nheaders; i++) {
                free(f->names[i]);
                free(f->values[i]);
        }
        free(f->names);
        free(f->values);
        free(f->sizes);
        free(f->topic);
        free(f->key);
        free(f->value);
        free(f);
}

static void failures_free(failure_t *f) {
        while (f) {
                failure_t *next = f->next;
                failure_free(f);
                f = next;
        }
}

static char *copy(const void *data, size_t len) {
        char *out = malloc(len ? len : 1);
        if (out && len)
                memcpy(out, data, len);
        return out;
}

/* A copy of a failed record, or NULL when memory ran out. */
static failure_t *failure_new(const rd_kafka_message_t *m) {
        failure_t *f = calloc(1, sizeof(*f));
        rd_kafka_headers_t *hdrs = NULL;
        const char *topic;
        size_t i, n = 0;

        if (!f)
                return NULL;
        f->err = m->err;
        topic  = api.topic_name(m->rkt);
        f->topic = copy(topic, strlen(topic) + 1);
        f->value = copy(m->payload, m->payload ? m->len : 0);
        f->len   = m->payload ? m->len : 0;
        if (!f->topic || !f->value)
                goto fail;
        if (m->key) {
                f->key     = copy(m->key, m->key_len);
                f->key_len = m->key_len;
                if (!f->key)
                        goto fail;
        }
        if (!api.message_headers(m, &hdrs) && hdrs) {
                const char *name;
                const void *value;
                size_t size;
                while (!api.header_get_all(hdrs, n, &name, &value, &size))
                        n++;
                f->names  = calloc(n ? n : 1, sizeof(char *));
                f->values = calloc(n ? n : 1, sizeof(char *));
                f->sizes  = calloc(n ? n : 1, sizeof(size_t));
                if (!f->names || !f->values || !f->sizes)
                        goto fail;
                for (i = 0; i < n; i++) {
                        api.header_get_all(hdrs, i, &name, &value, &size);
                        f->nheaders = i + 1;
                        f->names[i] = copy(name, strlen(name) + 1);
                        if (!f->names[i])
                                goto fail;
                        if (value) {
                                f->values[i] = copy(value, size);
                                f->sizes[i]  = size;
                                if (!f->values[i])
                                        goto fail;
                        }
                }
        }
        return f;

fail:
        failure_free(f);
        return NULL;
}

/* Frees the outcomes; their references are given back by the caller,
 * which holds the GIL (see FastProducer_dealloc), or leak. */
static void outcomes_free(outcome_t *o) {
        while (o) {
                outcome_t *next = o->next;
                if (o->failure)
                        failure_free(o->failure);
                free(o);
                o = next;
        }
}

static void watch_release(watch_t *w) {
        int refs;
        pthread_mutex_lock(&w->lock);
        refs = --w->refs;
        pthread_mutex_unlock(&w->lock);
        if (refs)
                return;
        failures_free(w->head);
        outcomes_free(w->outcomes);
        pthread_mutex_destroy(&w->lock);
        free(w);
}

/* ------------------------------------------------------------------ */
/* The librdkafka plugin: conf_init and its interceptors.              */

/* A tracked record's outcome: kept in order for tracked(), confirmed
 * numbers of one tracker joined into runs.  Its opaque becomes NULL, so
 * that confluent-kafka's trampoline returns at once for it.  Called with
 * the watch locked. */
static void track(watch_t *w, rd_kafka_message_t *m, ticket_t *t) {
        outcome_t *o = w->last;

        if (!w->draining) {
                /* No FastProducer any more: the reference leaks (the
                 * tracker's records can no longer be confirmed to anyone). */
                free(t);
                return;
        }
        if (!m->err && o && !o->failure && o->tracker == t->tracker &&
            o->last == t->seq - 1) {
                o->last = t->seq;
                free(t);
                return;
        }
        o = calloc(1, sizeof(*o));
        if (o && m->err && !(o->failure = failure_new(m))) {
                free(o);
                o = NULL;
        }
        if (!o) {
                /* Cannot keep it: counted, and never confirmed. */
                w->untracked++;
                free(t);
                return;
        }
        o->tracker = t->tracker;
        o->first = o->last = t->seq;
        free(t);
        if (w->last)
                w->last->next = o;
        else
                w->outcomes = o;
        w->last = o;
}

/* Every record this file produces carries no opaque, or a ticket (tracked
 * records): of the former only the failures are wanted, of the latter
 * every outcome, and only while a FastProducer drains them.  Runs on
 * librdkafka's broker threads, in the thread that purges, or in producev
 * (see producing). */
static rd_kafka_resp_err_t
on_acknowledgement(rd_kafka_t *rk, rd_kafka_message_t *m, void *opaque) {
        watch_t *w    = opaque;
        uintptr_t tag = (uintptr_t)m->_private;
        failure_t *f;

        if (producing)
                return 0;
        if (tag & TICKET_TAG) {
                m->_private = NULL;
                pthread_mutex_lock(&w->lock);
                track(w, m, (ticket_t *)(tag & ~TICKET_TAG));
                pthread_mutex_unlock(&w->lock);
                return 0;
        }
        if (!m->err || m->_private)
                return 0;
        pthread_mutex_lock(&w->lock);
        if (w->draining) {
                f = failure_new(m);
                if (f) {
                        *w->tail = f;
                        w->tail  = &f->next;
                } else {
                        /* Cannot copy it: the gateway learns of the loss. */
                        w->lost++;
                }
        }
        pthread_mutex_unlock(&w->lock);
        return 0;
}

static rd_kafka_resp_err_t on_new(rd_kafka_t *rk,
                                  const rd_kafka_conf_t *conf,
                                  void *opaque,
                                  char *errstr,
                                  size_t errstr_size) {
        watch_t *w = opaque;
        if (api.add_on_acknowledgement(rk, PLUGIN_NAME, on_acknowledgement,
                                       w))
                return 0; /* not acking: bind() refuses this handle */
        pthread_mutex_lock(&watches_lock);
        w->rk     = rk;
        w->acking = 1;
        w->next   = watches;
        watches   = w;
        pthread_mutex_unlock(&watches_lock);
        return 0;
}

static rd_kafka_resp_err_t on_conf_destroy(void *opaque) {
        watch_t *w = opaque, **p;
        pthread_mutex_lock(&watches_lock);
        for (p = &watches; *p; p = &(*p)->next) {
                if (*p == w) {
                        *p = w->next;
                        break;
                }
        }
        pthread_mutex_unlock(&watches_lock);
        watch_release(w);
        return 0;
}

static rd_kafka_resp_err_t watch_conf(rd_kafka_conf_t *conf);

static rd_kafka_resp_err_t on_conf_dup(rd_kafka_conf_t *new_conf,
                                       const rd_kafka_conf_t *old_conf,
                                       size_t filter_cnt,
                                       const char **filter,
                                       void *opaque) {
        return watch_conf(new_conf);
}

/* Give a configuration its own watch and interceptors. */
static rd_kafka_resp_err_t watch_conf(rd_kafka_conf_t *conf) {
        rd_kafka_resp_err_t err;
        watch_t *w = calloc(1, sizeof(*w));
        if (!w)
                return -1;
        pthread_mutex_init(&w->lock, NULL);
        w->refs = 1; /* the configuration's: on_conf_destroy releases it */
        w->tail = &w->head;
        err     = api.add_on_conf_destroy(conf, PLUGIN_NAME, on_conf_destroy, w);
        if (err) {
                pthread_mutex_destroy(&w->lock);
                free(w);
                return err;
        }
        if ((err = api.add_on_new(conf, PLUGIN_NAME, on_new, w)) ||
            (err = api.add_on_conf_dup(conf, PLUGIN_NAME, on_conf_dup, w)))
                return err; /* the watch goes with the configuration */
        return 0;
}

/* librdkafka's plugin entry point (plugin.library.paths). */
__attribute__((visibility("default"))) rd_kafka_resp_err_t
conf_init(rd_kafka_conf_t *conf,
          void **plug_opaquep,
          char *errstr,
          size_t errstr_size) {
        if (!library) {
                snprintf(errstr, errstr_size,
                         "%s: prepare() was not called", PLUGIN_NAME);
                return -1;
        }
        if (watch_conf(conf)) {
                snprintf(errstr, errstr_size,
                         "%s: cannot add its interceptors", PLUGIN_NAME);
                return -1;
        }
        return 0;
}

/* ------------------------------------------------------------------ */
/* FastProducer                                                        */

static int FastProducer_traverse(FastProducer *self, visitproc visit, void *arg) {
        Py_VISIT(self->producer);
        Py_VISIT(self->fallback);
        Py_VISIT(self->error);
        Py_VISIT(self->exception);
        return 0;
}

static int FastProducer_clear(FastProducer *self) {
        /* Without its producer it takes nothing (see produceMany). */
        Py_CLEAR(self->producer);
        Py_CLEAR(self->fallback);
        Py_CLEAR(self->error);
        Py_CLEAR(self->exception);
        return 0;
}

/* Give back the references of the outcomes (GIL held), then free them. */
static void outcomes_release(outcome_t *o) {
        outcome_t *p;
        unsigned long long n;
        for (p = o; p; p = p->next)
                for (n = (unsigned long long)(p->last - p->first) + 1; n; n--)
                        Py_DECREF(p->tracker);
        outcomes_free(o);
}

static void FastProducer_dealloc(FastProducer *self) {
        outcome_t *left = NULL;
        PyObject_GC_UnTrack(self);
        FastProducer_clear(self);
        if (self->watch) {
                pthread_mutex_lock(&self->watch->lock);
                self->watch->draining = 0;
                left                  = self->watch->outcomes;
                self->watch->outcomes = self->watch->last = NULL;
                pthread_mutex_unlock(&self->watch->lock);
                watch_release(self->watch);
        }
        outcomes_release(left);
        PyObject_GC_Del(self);
}

/* Build one headers list from [(str, bytes | str), ...]; NULL when an item
 * is anything else or cannot be encoded (the caller then leaves the records
 * to the pure-Python path, which judges them). */
static rd_kafka_headers_t *build_headers(PyObject *headers) {
        PyObject *seq;
        rd_kafka_headers_t *hdrs;
        Py_ssize_t i, n;

        seq = PySequence_Fast(headers, "headers must be a sequence");
        if (!seq)
                return NULL;
        n    = PySequence_Fast_GET_SIZE(seq);
        hdrs = api.headers_new((size_t)n);
        for (i = 0; i < n; i++) {
                PyObject *item = PySequence_Fast_GET_ITEM(seq, i);
                PyObject *name, *value;
                const char *cname, *cvalue = NULL;
                Py_ssize_t vlen = 0;

                if (!PyTuple_Check(item) || PyTuple_GET_SIZE(item) != 2)
                        goto unsupported;
                name  = PyTuple_GET_ITEM(item, 0);
                value = PyTuple_GET_ITEM(item, 1);
                if (!PyUnicode_Check(name))
                        goto unsupported;
                cname = PyUnicode_AsUTF8(name);
                if (!cname)
                        goto unsupported;
                if (PyBytes_Check(value)) {
                        cvalue = PyBytes_AS_STRING(value);
                        vlen   = PyBytes_GET_SIZE(value);
                } else if (PyUnicode_Check(value)) {
                        cvalue = PyUnicode_AsUTF8AndSize(value, &vlen);
                        if (!cvalue)
                                goto unsupported;
                } else {
                        goto unsupported;
                }
                if (api.header_add(hdrs, cname, -1, cvalue, vlen))
                        goto unsupported;
        }
        Py_DECREF(seq);
        return hdrs;

unsupported:
        api.headers_destroy(hdrs);
        Py_DECREF(seq);
        return NULL;
}

/* The decimal digits of v, which is not negative, written to end at end;
 * returns where they start.  snprintf took a tenth of an ack-mode record's
 * time on the reactor thread (bench/RESULTS.md). */
static char *decimal(unsigned long long v, char *end) {
        do {
                *--end = (char)('0' + v % 10);
                v /= 10;
        } while (v);
        return end;
}

/* A read's records, for produceMany (cseq NULL) and produceTracked (each
 * record numbered from first in its cseq header, with a ticket of tracker):
 * produced in order until one is not taken; returns how many were.  What it
 * cannot take (a type it does not know, any error) the pure-Python path
 * judges (and raises, dead-letters or holds exactly as for any record). */
static PyObject *produce_read(FastProducer *self,
                              PyObject *topic,
                              PyObject *values,
                              PyObject *key,
                              PyObject *headers,
                              const char *cseq,
                              PyObject *tracker,
                              long long first) {
        PyObject *seq;
        const char *ctopic, *ckey = NULL;
        Py_ssize_t klen = 0, i, n;
        rd_kafka_topic_t *rkt;
        rd_kafka_headers_t *tmpl = NULL;
        rd_kafka_t *rk;
        Py_ssize_t cseq_len = cseq ? (Py_ssize_t)strlen(cseq) : 0;

        if (!self->producer) /* cleared by the collector */
                return PyLong_FromLong(0);
        rk = handle_rk(self->producer);
        if (rk != self->rk) /* closed: nothing taken here */
                return PyLong_FromLong(0);
        if (!PyUnicode_Check(topic) || (key != Py_None && !PyBytes_Check(key)))
                return PyLong_FromLong(0);
        ctopic = PyUnicode_AsUTF8(topic);
        if (!ctopic)
                goto none;
        if (key != Py_None) {
                ckey = PyBytes_AS_STRING(key);
                klen = PyBytes_GET_SIZE(key);
        }
        seq = PySequence_Fast(values, "values must be a sequence");
        if (!seq)
                goto none;
        if (headers != Py_None)
                tmpl = build_headers(headers);
        else if (cseq)
                tmpl = api.headers_new(1);
        if (!tmpl && headers != Py_None) {
                Py_DECREF(seq);
                goto none;
        }
        rkt = api.topic_new(rk, ctopic, NULL);
        if (!rkt) {
                if (tmpl)
                        api.headers_destroy(tmpl);
                Py_DECREF(seq);
                return PyLong_FromLong(0);
        }

        producing = 1;
        n         = PySequence_Fast_GET_SIZE(seq);
        for (i = 0; i < n; i++) {
                PyObject *value = PySequence_Fast_GET_ITEM(seq, i);
                rd_kafka_headers_t *hdrs;
                rd_kafka_resp_err_t err;
                ticket_t *t = NULL;

                if (!PyBytes_CheckExact(value))
                        break;
                /* VTYPE_HEADERS with NULL: no headers. */
                hdrs = tmpl ? api.headers_copy(tmpl) : NULL;
                if (cseq) {
                        char number[24], *digits;
                        /* Past 2**63 - 1 the pure path numbers on; numbers
                         * below 0 are its too. */
                        if (first < 0 || first > LLONG_MAX - i ||
                            !(t = malloc(sizeof(*t)))) {
                                api.headers_destroy(hdrs);
                                break;
                        }
                        t->tracker = tracker;
                        t->seq     = first + i;
                        digits     = decimal((unsigned long long)t->seq,
                                             number + sizeof(number));
                        if (api.header_add(hdrs, cseq, cseq_len, digits,
                                           (size_t)(number + sizeof(number) -
                                                    digits))) {
                                api.headers_destroy(hdrs);
                                free(t);
                                break;
                        }
                }
                err = api.producev(
                    rk, VTYPE_RKT, rkt, VTYPE_PARTITION, PARTITION_UA,
                    VTYPE_VALUE, (void *)PyBytes_AS_STRING(value),
                    (size_t)PyBytes_GET_SIZE(value), VTYPE_KEY, (void *)ckey,
                    (size_t)klen, VTYPE_OPAQUE,
                    t ? (void *)((uintptr_t)t | TICKET_TAG) : NULL,
                    VTYPE_MSGFLAGS, MSG_F_COPY, VTYPE_HEADERS, hdrs, VTYPE_END);
                if (err) {
                        /* Not taken: everything stays ours. */
                        if (hdrs)
                                api.headers_destroy(hdrs);
                        free(t);
                        break;
                }
                /* Given back by tracked(), on this thread: no outcome can
                 * be handed over before this. */
                if (t)
                        Py_INCREF(tracker);
        }
        producing = 0;
        api.topic_destroy(rkt);
        if (tmpl)
                api.headers_destroy(tmpl);
        Py_DECREF(seq);
        return PyLong_FromSsize_t(i);

none:
        PyErr_Clear();
        return PyLong_FromLong(0);
}

PyDoc_STRVAR(produceMany_doc,
             "produceMany(topic, values, key, headers) -> int\n\n"
             "Produce values in order, each with the same topic, key and "
             "headers, until one is not taken (queue full, any error, or a "
             "value that is not bytes); return how many were taken.  The "
             "caller produces the rest through the pure-Python path.  A "
             "taken record that fails is returned by failures().");

static PyObject *
FastProducer_produceMany(FastProducer *self, PyObject *const *args,
                         Py_ssize_t nargs) {
        if (nargs != 4) {
                PyErr_SetString(PyExc_TypeError,
                                "produceMany(topic, values, key, headers)");
                return NULL;
        }
        return produce_read(self, args[0], args[1], args[2], args[3], NULL,
                            NULL, 0);
}

PyDoc_STRVAR(produceTracked_doc,
             "produceTracked(topic, values, key, headers, seqHeader, tracker, "
             "first) -> int\n\n"
             "produceMany for records whose every outcome tracker learns: "
             "value i is record number first + i, carried in its seqHeader "
             "header after the others.  Returns how many were taken; their "
             "outcomes come back from tracked(), in the order librdkafka "
             "reported them.");

static PyObject *
FastProducer_produceTracked(FastProducer *self, PyObject *const *args,
                            Py_ssize_t nargs) {
        const char *cseq;
        long long first;

        if (nargs != 7) {
                PyErr_SetString(PyExc_TypeError,
                                "produceTracked(topic, values, key, headers, "
                                "seqHeader, tracker, first)");
                return NULL;
        }
        first = PyLong_AsLongLong(args[6]);
        if (first == -1 && PyErr_Occurred())
                return NULL;
        if (!PyUnicode_Check(args[4]) || !(cseq = PyUnicode_AsUTF8(args[4]))) {
                PyErr_Clear();
                return PyLong_FromLong(0);
        }
        return produce_read(self, args[0], args[1], args[2], args[3], cseq,
                            args[5], first);
}

/* Raise what confluent-kafka's Producer.produce raises for err. */
static PyObject *produce_error(FastProducer *self, rd_kafka_resp_err_t err) {
        PyObject *error;
        if (err == ERR__QUEUE_FULL) {
                PyErr_SetString(PyExc_BufferError, "Local: Queue full");
                return NULL;
        }
        error = PyObject_CallFunction(self->error, "i", (int)err);
        if (error) {
                PyErr_SetObject(self->exception, error);
                Py_DECREF(error);
        }
        return NULL;
}

PyDoc_STRVAR(produce_doc,
             "produce(topic, value, key=None, headers=None)\n\n"
             "Producer.produce for one record, produced as produceMany's are "
             "(a failure is returned by failures()), raising what it raises: "
             "BufferError when the queue is full, KafkaException for any other "
             "refusal.  Arguments of other types go to Producer.produce.");

static PyObject *FastProducer_produce(FastProducer *self,
                                      PyObject *const *args,
                                      Py_ssize_t nargs,
                                      PyObject *kwnames) {
        PyObject *topic, *value, *key = Py_None, *headers = Py_None;
        const char *ctopic, *ckey = NULL;
        Py_ssize_t klen = 0, i, nkw = kwnames ? PyTuple_GET_SIZE(kwnames) : 0;
        rd_kafka_headers_t *hdrs = NULL;
        rd_kafka_resp_err_t err;
        rd_kafka_t *rk;

        if (nargs < 2 || nargs > 4 || !self->producer)
                goto fallback;
        topic = args[0];
        value = args[1];
        if (nargs > 2)
                key = args[2];
        if (nargs > 3)
                headers = args[3];
        for (i = 0; i < nkw; i++) {
                PyObject *name = PyTuple_GET_ITEM(kwnames, i);
                if (!PyUnicode_Check(name) ||
                    PyUnicode_CompareWithASCIIString(name, "headers") ||
                    nargs > 3)
                        goto fallback;
                headers = args[nargs + i];
        }
        rk = handle_rk(self->producer);
        if (rk != self->rk || !PyUnicode_Check(topic) ||
            !PyBytes_CheckExact(value) ||
            (key != Py_None && !PyBytes_Check(key)))
                goto fallback;
        ctopic = PyUnicode_AsUTF8(topic);
        if (!ctopic) {
                PyErr_Clear();
                goto fallback;
        }
        if (key != Py_None) {
                ckey = PyBytes_AS_STRING(key);
                klen = PyBytes_GET_SIZE(key);
        }
        if (headers != Py_None) {
                hdrs = build_headers(headers);
                if (!hdrs) {
                        PyErr_Clear();
                        goto fallback;
                }
        }
        producing = 1;
        err = api.producev(rk, VTYPE_TOPIC, ctopic, VTYPE_PARTITION,
                           PARTITION_UA, VTYPE_VALUE,
                           (void *)PyBytes_AS_STRING(value),
                           (size_t)PyBytes_GET_SIZE(value), VTYPE_KEY,
                           (void *)ckey, (size_t)klen, VTYPE_MSGFLAGS,
                           MSG_F_COPY, VTYPE_HEADERS, hdrs, VTYPE_END);
        producing = 0;
        if (err) {
                if (hdrs)
                        api.headers_destroy(hdrs);
                return produce_error(self, err);
        }
        Py_RETURN_NONE;

fallback:
        /* Confluent-kafka's produce judges (and raises for) the rest; a
         * record it takes is reported through its on_delivery. */
        if (!self->fallback) {
                PyErr_SetString(PyExc_BufferError, "the producer is closed");
                return NULL;
        }
        return PyObject_Vectorcall(self->fallback, args, (size_t)nargs,
                                   kwnames);
}

/* (topic, key, value, [(name, value), ...], code) for one failure; names
 * not in UTF-8 are decoded with replacement, so that only memory can fail. */
static PyObject *failure_tuple(const failure_t *f) {
        PyObject *headers = PyList_New((Py_ssize_t)f->nheaders);
        size_t i;
        if (!headers)
                return NULL;
        for (i = 0; i < f->nheaders; i++) {
                PyObject *name, *h;
                name = PyUnicode_DecodeUTF8(f->names[i],
                                            (Py_ssize_t)strlen(f->names[i]),
                                            "replace");
                if (!name) {
                        Py_DECREF(headers);
                        return NULL;
                }
                if (f->values[i])
                        h = Py_BuildValue("(Ny#)", name, f->values[i],
                                          (Py_ssize_t)f->sizes[i]);
                else
                        h = Py_BuildValue("(NO)", name, Py_None);
                if (!h) {
                        Py_DECREF(headers);
                        return NULL;
                }
                PyList_SET_ITEM(headers, (Py_ssize_t)i, h);
        }
        if (f->key)
                return Py_BuildValue("(Ny#y#Ni)",
                                     PyUnicode_DecodeUTF8(f->topic,
                                                          (Py_ssize_t)strlen(f->topic),
                                                          "replace"),
                                     f->key, (Py_ssize_t)f->key_len, f->value,
                                     (Py_ssize_t)f->len, headers, f->err);
        return Py_BuildValue("(NOy#Ni)",
                             PyUnicode_DecodeUTF8(f->topic,
                                                  (Py_ssize_t)strlen(f->topic),
                                                  "replace"),
                             Py_None, f->value, (Py_ssize_t)f->len, headers,
                             f->err);
}

PyDoc_STRVAR(failures_doc,
             "failures() -> (records, lost)\n\n"
             "The records produced by produceMany that failed since the last "
             "call, in the order librdkafka reported them, each as (topic, "
             "key, value, headers, librdkafka error code); lost: how many "
             "more failed that could not be copied (no memory).");

static PyObject *FastProducer_failures(FastProducer *self, PyObject *unused) {
        failure_t *head, *f;
        PyObject *list, *result;
        long lost;

        if (!self->watch)
                return Py_BuildValue("([]i)", 0);
        pthread_mutex_lock(&self->watch->lock);
        head               = self->watch->head;
        lost               = self->watch->lost;
        self->watch->head  = NULL;
        self->watch->tail  = &self->watch->head;
        self->watch->lost  = 0;
        pthread_mutex_unlock(&self->watch->lock);

        list = PyList_New(0);
        if (!list) {
                failures_free(head);
                return NULL;
        }
        for (f = head; f; f = f->next) {
                PyObject *item = failure_tuple(f);
                if (!item || PyList_Append(list, item)) {
                        /* Out of memory: counted as lost, not raised, so
                         * that the others are still handed over. */
                        PyErr_Clear();
                        lost++;
                }
                Py_XDECREF(item);
        }
        failures_free(head);
        result = Py_BuildValue("(Nl)", list, lost);
        return result;
}

PyDoc_STRVAR(tracked_doc,
             "tracked() -> (outcomes, lost)\n\n"
             "The outcomes of produceTracked's records since the last call, "
             "in the order librdkafka reported them: (tracker, first, last, "
             "None) for records first..last of tracker confirmed, (tracker, "
             "seq, seq, failure) for one that failed, failure as in "
             "failures(); lost: how many more could not be kept (no memory), "
             "which are never confirmed.");

static PyObject *FastProducer_tracked(FastProducer *self, PyObject *unused) {
        outcome_t *head, *o;
        PyObject *list;
        long lost;

        if (!self->watch)
                return Py_BuildValue("([]i)", 0);
        pthread_mutex_lock(&self->watch->lock);
        head                   = self->watch->outcomes;
        lost                   = self->watch->untracked;
        self->watch->outcomes  = self->watch->last = NULL;
        self->watch->untracked = 0;
        pthread_mutex_unlock(&self->watch->lock);

        list = PyList_New(0);
        if (!list) {
                outcomes_release(head);
                return NULL;
        }
        for (o = head; o; o = o->next) {
                PyObject *failure = Py_None, *item = NULL;
                if (o->failure)
                        failure = failure_tuple(o->failure);
                else
                        Py_INCREF(failure);
                if (failure)
                        item = Py_BuildValue("(OLLN)", o->tracker, o->first,
                                             o->last, failure);
                if (!item || PyList_Append(list, item)) {
                        /* Out of memory: counted as lost, not raised, so
                         * that the others are still handed over. */
                        PyErr_Clear();
                        lost += (long)(o->last - o->first + 1);
                }
                Py_XDECREF(item);
        }
        outcomes_release(head);
        return Py_BuildValue("(Nl)", list, lost);
}

static PyMethodDef FastProducer_methods[] = {
    {"produceMany", (PyCFunction)(void (*)(void))FastProducer_produceMany,
     METH_FASTCALL, produceMany_doc},
    {"produce", (PyCFunction)(void (*)(void))FastProducer_produce,
     METH_FASTCALL | METH_KEYWORDS, produce_doc},
    {"produceTracked", (PyCFunction)(void (*)(void))FastProducer_produceTracked,
     METH_FASTCALL, produceTracked_doc},
    {"failures", (PyCFunction)FastProducer_failures, METH_NOARGS, failures_doc},
    {"tracked", (PyCFunction)FastProducer_tracked, METH_NOARGS, tracked_doc},
    {NULL}};

static PyTypeObject FastProducerType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "gateway.compat._confluent.FastProducer",
    .tp_basicsize                          = sizeof(FastProducer),
    .tp_dealloc                            = (destructor)FastProducer_dealloc,
    .tp_flags                              = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_traverse = (traverseproc)FastProducer_traverse,
    .tp_clear    = (inquiry)FastProducer_clear,
    .tp_doc     = "A confluent-kafka Producer's librdkafka handle, bound once.",
    .tp_methods = FastProducer_methods,
};

#define LOOKUP(field, symbol)                                                  \
        do {                                                                   \
                *(void **)(&found.field) = dlsym(handle, symbol);              \
                if (!found.field) {                                            \
                        PyErr_Format(PyExc_ValueError,                         \
                                     "%s not found in %s", symbol, path);      \
                        dlclose(handle);                                       \
                        return NULL;                                           \
                }                                                              \
        } while (0)

PyDoc_STRVAR(prepare_doc,
             "prepare(library) -> str\n\n"
             "library: the path of the librdkafka confluent-kafka loaded "
             "(opened with RTLD_NOLOAD: it must be loaded already).  Looks "
             "up what this module calls, once per process, and returns this "
             "module's own file: the plugin for plugin.library.paths.  "
             "Raises ValueError saying what is missing.");

static PyObject *prepare(PyObject *module, PyObject *args) {
        const char *path;
        void *handle;
        api_t found;
        Dl_info self_info;

        if (!PyArg_ParseTuple(args, "s", &path))
                return NULL;
        if (library) {
                if (strcmp(path, library_path)) {
                        PyErr_Format(PyExc_ValueError,
                                     "prepared for %s already, not %s",
                                     library_path, path);
                        return NULL;
                }
        } else {
                handle = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
                if (!handle) {
                        PyErr_Format(PyExc_ValueError, "%s is not loaded",
                                     path);
                        return NULL;
                }
                LOOKUP(producev, "rd_kafka_producev");
                LOOKUP(topic_new, "rd_kafka_topic_new");
                LOOKUP(topic_destroy, "rd_kafka_topic_destroy");
                LOOKUP(headers_new, "rd_kafka_headers_new");
                LOOKUP(header_add, "rd_kafka_header_add");
                LOOKUP(headers_copy, "rd_kafka_headers_copy");
                LOOKUP(headers_destroy, "rd_kafka_headers_destroy");
                LOOKUP(opaque, "rd_kafka_opaque");
                LOOKUP(topic_name, "rd_kafka_topic_name");
                LOOKUP(message_headers, "rd_kafka_message_headers");
                LOOKUP(header_get_all, "rd_kafka_header_get_all");
                LOOKUP(add_on_new, "rd_kafka_conf_interceptor_add_on_new");
                LOOKUP(add_on_conf_dup,
                       "rd_kafka_conf_interceptor_add_on_conf_dup");
                LOOKUP(add_on_conf_destroy,
                       "rd_kafka_conf_interceptor_add_on_conf_destroy");
                LOOKUP(add_on_acknowledgement,
                       "rd_kafka_interceptor_add_on_acknowledgement");
                library_path = strdup(path);
                if (!library_path) {
                        dlclose(handle);
                        return PyErr_NoMemory();
                }
                api     = found;
                library = handle;
        }
        if (!dladdr((void *)conf_init, &self_info) || !self_info.dli_fname) {
                PyErr_SetString(PyExc_ValueError,
                                "cannot find this module's own file");
                return NULL;
        }
        return PyUnicode_DecodeFSDefault(self_info.dli_fname);
}

PyDoc_STRVAR(bind_doc,
             "bind(producer) -> FastProducer\n\n"
             "producer: a confluent_kafka.Producer created with this module "
             "in its plugin.library.paths, after prepare().  Raises "
             "ValueError saying which check failed.");

static PyObject *bind(PyObject *module, PyObject *producer) {
        PyObject *confluent;
        FastProducer *self;
        rd_kafka_t *rk;
        watch_t *w;

        if (!library) {
                PyErr_SetString(PyExc_ValueError, "prepare() was not called");
                return NULL;
        }
        rk = handle_rk(producer);
        if (!rk) {
                PyErr_SetString(PyExc_ValueError, "the producer has no handle");
                return NULL;
        }
        /* Found among the watched handles before it is dereferenced as
         * one: an object of another layout is refused here. */
        pthread_mutex_lock(&watches_lock);
        for (w = watches; w && w->rk != rk; w = w->next)
                ;
        if (w) {
                pthread_mutex_lock(&w->lock);
                if (w->draining) {
                        pthread_mutex_unlock(&w->lock);
                        pthread_mutex_unlock(&watches_lock);
                        PyErr_SetString(PyExc_ValueError,
                                        "the producer is bound already");
                        return NULL;
                }
                w->refs++;
                w->draining = 1;
                pthread_mutex_unlock(&w->lock);
        }
        pthread_mutex_unlock(&watches_lock);
        if (!w) {
                PyErr_SetString(PyExc_ValueError,
                                "the producer has no handle this plugin "
                                "watches (not created with it in "
                                "plugin.library.paths)");
                return NULL;
        }
        if (api.opaque(rk) != (void *)producer) {
                PyErr_SetString(PyExc_ValueError,
                                "the handle's opaque is not the producer: "
                                "confluent-kafka's Handle layout changed");
                goto fail;
        }
        self = PyObject_GC_New(FastProducer, &FastProducerType);
        if (!self)
                goto fail;
        self->producer = self->fallback = self->error = self->exception = NULL;
        self->watch = NULL;
        self->fallback = PyObject_GetAttrString(producer, "produce");
        confluent      = PyImport_ImportModule("confluent_kafka");
        if (confluent) {
                self->error     = PyObject_GetAttrString(confluent, "KafkaError");
                self->exception = PyObject_GetAttrString(confluent, "KafkaException");
                Py_DECREF(confluent);
        }
        if (!self->fallback || !self->error || !self->exception) {
                Py_DECREF(self);
                goto fail;
        }
        Py_INCREF(producer);
        self->producer = producer;
        self->rk       = rk;
        self->watch    = w;
        PyObject_GC_Track(self);
        return (PyObject *)self;

fail:
        pthread_mutex_lock(&w->lock);
        w->draining = 0;
        pthread_mutex_unlock(&w->lock);
        watch_release(w);
        return NULL;
}

static PyMethodDef module_methods[] = {
    {"prepare", prepare, METH_VARARGS, prepare_doc},
    {"bind", bind, METH_O, bind_doc},
    {NULL}};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "gateway.compat._confluent",
    "Produce a read's frames into confluent-kafka's librdkafka handle.", -1,
    module_methods};

PyMODINIT_FUNC PyInit__confluent(void) {
        PyObject *m;
        if (PyType_Ready(&FastProducerType) < 0)
                return NULL;
        m = PyModule_Create(&module);
        if (!m)
                return NULL;
        Py_INCREF(&FastProducerType);
        if (PyModule_AddObject(m, "FastProducer",
                               (PyObject *)&FastProducerType) < 0) {
                Py_DECREF(&FastProducerType);
                Py_DECREF(m);
                return NULL;
        }
        return m;
}
