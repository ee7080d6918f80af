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
 *  - confluent-kafka's per-message opaque is a calloc'd
 *    struct { Handle *self; PyObject *dr_cb; } which its delivery report
 *    trampoline calls dr_cb with, then frees (free, Py_DECREF dr_cb);
 *  - librdkafka's ABI for the few functions below (rdkafka.h), looked up
 *    with dlsym in the very copy confluent-kafka loaded (no second
 *    librdkafka in the process).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <dlfcn.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/types.h>

/* The subset of rdkafka.h used, by value: no librdkafka headers needed. */
typedef struct rd_kafka_s rd_kafka_t;
typedef struct rd_kafka_topic_s rd_kafka_topic_t;
typedef struct rd_kafka_headers_s rd_kafka_headers_t;
typedef int rd_kafka_resp_err_t;

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
#define PARTITION_UA ((int32_t)-1)

/* confluent-kafka's struct Producer_msgstate (src/Producer.c). */
struct msgstate {
        void *self;
        PyObject *dr_cb;
};

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
} api_t;

typedef struct {
        PyObject_HEAD PyObject *producer; /* the confluent Producer (kept alive) */
        PyObject *delivery;               /* its on_delivery callable */
        rd_kafka_t *rk;
        void *library; /* dlopen handle (RTLD_NOLOAD: already loaded) */
        api_t api;
} FastProducer;

/* Where confluent-kafka's Handle keeps its rd_kafka_t *: right after the
 * object header. */
static rd_kafka_t *handle_rk(PyObject *producer) {
        return *(rd_kafka_t **)((char *)producer + sizeof(PyObject));
}

/* Garbage-collected: the producer's on_delivery is usually a bound method
 * of the object that holds this one, a cycle the collector must see. */
static int FastProducer_traverse(FastProducer *self, visitproc visit, void *arg) {
        Py_VISIT(self->producer);
        Py_VISIT(self->delivery);
        return 0;
}

static int FastProducer_clear(FastProducer *self) {
        /* Without its producer it takes nothing (see produceMany). */
        Py_CLEAR(self->producer);
        Py_CLEAR(self->delivery);
        return 0;
}

static void FastProducer_dealloc(FastProducer *self) {
        PyObject_GC_UnTrack(self);
        FastProducer_clear(self);
        if (self->library)
                dlclose(self->library);
        PyObject_GC_Del(self);
}

/* Build one headers list from [(str, bytes | str), ...]; NULL when an item
 * is anything else or cannot be encoded (the caller then leaves the records
 * to the pure-Python path, which judges them). */
static rd_kafka_headers_t *build_headers(FastProducer *self,
                                         PyObject *headers) {
        PyObject *seq;
        rd_kafka_headers_t *hdrs;
        Py_ssize_t i, n;

        seq = PySequence_Fast(headers, "headers must be a sequence");
        if (!seq)
                return NULL;
        n    = PySequence_Fast_GET_SIZE(seq);
        hdrs = self->api.headers_new((size_t)n);
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
                if (self->api.header_add(hdrs, cname, -1, cvalue, vlen))
                        goto unsupported;
        }
        Py_DECREF(seq);
        return hdrs;

unsupported:
        self->api.headers_destroy(hdrs);
        Py_DECREF(seq);
        return NULL;
}

PyDoc_STRVAR(produceMany_doc,
             "produceMany(topic, values, key, headers) -> int\n\n"
             "Produce values in order, each with the same topic, key and "
             "headers, until one is not taken (queue full, any error, or a "
             "value that is not bytes); return how many were taken.  The "
             "caller produces the rest through the pure-Python path.");

static PyObject *
FastProducer_produceMany(FastProducer *self, PyObject *const *args,
                         Py_ssize_t nargs) {
        PyObject *topic, *values, *key, *headers, *seq;
        const char *ctopic, *ckey = NULL;
        Py_ssize_t klen = 0, i, n;
        rd_kafka_topic_t *rkt;
        rd_kafka_headers_t *tmpl = NULL;
        rd_kafka_t *rk;

        if (nargs != 4) {
                PyErr_SetString(PyExc_TypeError,
                                "produceMany(topic, values, key, headers)");
                return NULL;
        }
        topic   = args[0];
        values  = args[1];
        key     = args[2];
        headers = args[3];

        if (!self->producer) /* cleared by the collector */
                return PyLong_FromLong(0);
        rk = handle_rk(self->producer);
        if (rk != self->rk) /* closed: nothing taken here */
                return PyLong_FromLong(0);
        if (!PyUnicode_Check(topic))
                return PyLong_FromLong(0);
        ctopic = PyUnicode_AsUTF8(topic);
        if (!ctopic)
                goto none;
        if (key != Py_None) {
                if (!PyBytes_Check(key))
                        return PyLong_FromLong(0);
                ckey = PyBytes_AS_STRING(key);
                klen = PyBytes_GET_SIZE(key);
        }
        seq = PySequence_Fast(values, "values must be a sequence");
        if (!seq)
                goto none;
        if (headers != Py_None) {
                tmpl = build_headers(self, headers);
                if (!tmpl) {
                        Py_DECREF(seq);
                        goto none;
                }
        }
        rkt = self->api.topic_new(rk, ctopic, NULL);
        if (!rkt) {
                if (tmpl)
                        self->api.headers_destroy(tmpl);
                Py_DECREF(seq);
                return PyLong_FromLong(0);
        }

        n = PySequence_Fast_GET_SIZE(seq);
        for (i = 0; i < n; i++) {
                PyObject *value = PySequence_Fast_GET_ITEM(seq, i);
                struct msgstate *state;
                rd_kafka_headers_t *hdrs = NULL;
                rd_kafka_resp_err_t err;

                if (!PyBytes_CheckExact(value))
                        break;
                state = calloc(1, sizeof(*state));
                if (!state)
                        break;
                state->self  = self->producer;
                state->dr_cb = self->delivery;
                Py_INCREF(self->delivery);
                if (tmpl) {
                        hdrs = self->api.headers_copy(tmpl);
                        err  = self->api.producev(
                            rk, VTYPE_RKT, rkt, VTYPE_PARTITION, PARTITION_UA,
                            VTYPE_VALUE, (void *)PyBytes_AS_STRING(value),
                            (size_t)PyBytes_GET_SIZE(value), VTYPE_KEY,
                            (void *)ckey, (size_t)klen, VTYPE_OPAQUE,
                            (void *)state, VTYPE_MSGFLAGS, MSG_F_COPY,
                            VTYPE_HEADERS, hdrs, VTYPE_END);
                } else {
                        err = self->api.producev(
                            rk, VTYPE_RKT, rkt, VTYPE_PARTITION, PARTITION_UA,
                            VTYPE_VALUE, (void *)PyBytes_AS_STRING(value),
                            (size_t)PyBytes_GET_SIZE(value), VTYPE_KEY,
                            (void *)ckey, (size_t)klen, VTYPE_OPAQUE,
                            (void *)state, VTYPE_MSGFLAGS, MSG_F_COPY,
                            VTYPE_END);
                }
                if (err) {
                        /* Not taken: everything stays ours. */
                        if (hdrs)
                                self->api.headers_destroy(hdrs);
                        Py_DECREF(self->delivery);
                        free(state);
                        break;
                }
        }
        self->api.topic_destroy(rkt);
        if (tmpl)
                self->api.headers_destroy(tmpl);
        Py_DECREF(seq);
        return PyLong_FromSsize_t(i);

none:
        /* Whatever this path cannot take, the pure-Python one judges (and
         * raises, dead-letters or holds exactly as for any record). */
        PyErr_Clear();
        return PyLong_FromLong(0);
}

static PyMethodDef FastProducer_methods[] = {
    {"produceMany", (PyCFunction)(void (*)(void))FastProducer_produceMany,
     METH_FASTCALL, produceMany_doc},
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
                *(void **)(&self->api.field) = dlsym(self->library, symbol);   \
                if (!self->api.field) {                                        \
                        PyErr_Format(PyExc_ValueError,                         \
                                     "%s not found in %s", symbol, path);      \
                        goto fail;                                             \
                }                                                              \
        } while (0)

PyDoc_STRVAR(bind_doc,
             "bind(producer, library, delivery) -> FastProducer\n\n"
             "producer: a confluent_kafka.Producer; library: the path of the "
             "librdkafka it loaded (opened with RTLD_NOLOAD: it must be "
             "loaded already); delivery: the producer's on_delivery "
             "callable.  Raises ValueError saying which check failed.");

static PyObject *bind(PyObject *module, PyObject *args) {
        PyObject *producer, *delivery;
        const char *path;
        FastProducer *self;

        if (!PyArg_ParseTuple(args, "OsO", &producer, &path, &delivery))
                return NULL;
        if (!PyCallable_Check(delivery)) {
                PyErr_SetString(PyExc_TypeError, "delivery must be callable");
                return NULL;
        }
        self = PyObject_GC_New(FastProducer, &FastProducerType);
        if (!self)
                return NULL;
        self->producer = NULL;
        self->delivery = NULL;
        self->rk       = NULL;
        self->library  = dlopen(path, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
        if (!self->library) {
                PyErr_Format(PyExc_ValueError, "%s is not loaded", path);
                goto fail;
        }
        LOOKUP(producev, "rd_kafka_producev");
        LOOKUP(topic_new, "rd_kafka_topic_new");
        LOOKUP(topic_destroy, "rd_kafka_topic_destroy");
        LOOKUP(headers_new, "rd_kafka_headers_new");
        LOOKUP(header_add, "rd_kafka_header_add");
        LOOKUP(headers_copy, "rd_kafka_headers_copy");
        LOOKUP(headers_destroy, "rd_kafka_headers_destroy");
        LOOKUP(opaque, "rd_kafka_opaque");

        self->rk = handle_rk(producer);
        if (!self->rk) {
                PyErr_SetString(PyExc_ValueError, "the producer has no handle");
                goto fail;
        }
        if (self->api.opaque(self->rk) != (void *)producer) {
                PyErr_SetString(PyExc_ValueError,
                                "the handle's opaque is not the producer: "
                                "confluent-kafka's Handle layout changed");
                goto fail;
        }
        Py_INCREF(producer);
        self->producer = producer;
        Py_INCREF(delivery);
        self->delivery = delivery;
        PyObject_GC_Track(self);
        return (PyObject *)self;

fail:
        Py_DECREF(self);
        return NULL;
}

static PyMethodDef module_methods[] = {
    {"bind", bind, METH_VARARGS, bind_doc},
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
