#ifndef GENESYS_INGEST_CLIBPQ_SHIM_H
#define GENESYS_INGEST_CLIBPQ_SHIM_H
#include <libpq-fe.h>
#endif
