#ifndef GENESYS_INGEST_CRDKAFKA_SHIM_H
#define GENESYS_INGEST_CRDKAFKA_SHIM_H
#include <librdkafka/rdkafka.h>

/// The librdkafka version these headers declare (RD_KAFKA_VERSION is a macro Swift cannot import).
static inline int crdkafka_header_version(void) { return RD_KAFKA_VERSION; }
#endif
