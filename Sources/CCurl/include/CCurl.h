#ifndef GENESYS_INGEST_CCURL_H
#define GENESYS_INGEST_CCURL_H
// libcurl for IngestHTTPClient (its only importer). curl_easy_setopt, curl_easy_getinfo and
// curl_multi_setopt are variadic, which Swift cannot call: these typed wrappers call them.
#include <curl/curl.h>
#include <stddef.h>

typedef size_t (*ccurl_data_callback)(char *data, size_t size, size_t count, void *userdata);

CURLcode ccurl_setopt_long(CURL *easy, CURLoption option, long value);
/// Strings are copied by libcurl (since 7.17); other pointers must outlive the transfer.
CURLcode ccurl_setopt_pointer(CURL *easy, CURLoption option, const void *value);
CURLcode ccurl_setopt_off(CURL *easy, CURLoption option, curl_off_t value);
CURLcode ccurl_setopt_callback(CURL *easy, CURLoption option, ccurl_data_callback callback);
long ccurl_response_code(CURL *easy);
/// The socket of a CONNECT_ONLY transfer (CURLINFO_ACTIVESOCKET), or -1.
int ccurl_active_socket(CURL *easy);
CURLMcode ccurl_multi_setopt_long(CURLM *multi, CURLMoption option, long value);
/// The result code of a CURLMSG_DONE message (the `data` union's `result`).
static inline CURLcode ccurl_message_result(const CURLMsg *message) { return message->data.result; }
#endif
