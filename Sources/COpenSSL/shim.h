#ifndef GENESYS_INGEST_COPENSSL_SHIM_H
#define GENESYS_INGEST_COPENSSL_SHIM_H
#include <openssl/evp.h>
#include <openssl/core_names.h>
#include <openssl/params.h>
#include <openssl/hmac.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <openssl/err.h>

/// OSSL_PARAM construction helpers (the OSSL_PARAM_* macros are not importable).
static inline OSSL_PARAM copenssl_param_utf8(const char *key, char *value) {
    return OSSL_PARAM_construct_utf8_string(key, value, 0);
}
static inline OSSL_PARAM copenssl_param_end(void) { return OSSL_PARAM_construct_end(); }
#endif
