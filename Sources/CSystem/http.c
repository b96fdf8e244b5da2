// libcurl through dlopen: only `rom.fetch` downloads, so no other command pays for loading libcurl
// and the dozens of libraries behind it, and the self-contained build needs no libcurl to start.
// The option and info numbers are libcurl's stable ABI (curl/curl.h); no header is needed to build.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "csystem.h"

enum {
    OPT_WRITEDATA = 10001, OPT_URL = 10002, OPT_ERRORBUFFER = 10010, OPT_WRITEFUNCTION = 20011, OPT_TIMEOUT = 13,
    OPT_USERAGENT = 10018, OPT_LOW_SPEED_LIMIT = 19, OPT_LOW_SPEED_TIME = 20, OPT_FOLLOWLOCATION = 52,
    OPT_CONNECTTIMEOUT = 78, OPT_NOSIGNAL = 99, OPT_MAXFILESIZE_LARGE = 30117,
    INFO_RESPONSE_CODE = 0x200000 + 2, INFO_REDIRECT_URL = 0x100000 + 31,
    CODE_OK = 0, CODE_WRITE_ERROR = 23, CODE_FILESIZE_EXCEEDED = 63, GLOBAL_DEFAULT = 3, ERROR_SIZE = 256,
};

typedef void CURL;
static struct {
    int (*global_init)(long);
    CURL *(*easy_init)(void);
    int (*setopt_long)(CURL *, int, long);
    int (*setopt_pointer)(CURL *, int, const void *);
    int (*setopt_off)(CURL *, int, long long);
    int (*setopt_function)(CURL *, int, size_t (*)(char *, size_t, size_t, void *));
    int (*perform)(CURL *);
    int (*getinfo_long)(CURL *, int, long *);
    int (*getinfo_string)(CURL *, int, char **);
    void (*cleanup)(CURL *);
    const char *(*strerror)(int);
    const char *load_error;
} curl;

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static char load_error_text[512];

static void load_curl(void) {
    static const char *const names[] = {"libcurl.so.4", "libcurl-gnutls.so.4", "libcurl-nss.so.4"};
    void *library = NULL;
    for (size_t i = 0; i < sizeof names / sizeof *names && !library; i++) library = dlopen(names[i], RTLD_NOW | RTLD_LOCAL);
    if (!library) {
        snprintf(load_error_text, sizeof load_error_text,
                 "downloads need libcurl (libcurl.so.4) on this machine, and none could be loaded (%s)", dlerror());
        curl.load_error = load_error_text;
        return;
    }
    // libcurl's setopt and getinfo are variadic; calling them through a pointer typed with the one
    // argument passed is how the x86-64 and aarch64 ABIs pass that argument.
    void *setopt = dlsym(library, "curl_easy_setopt"), *getinfo = dlsym(library, "curl_easy_getinfo");
    curl.global_init = (int (*)(long))dlsym(library, "curl_global_init");
    curl.easy_init = (CURL * (*)(void)) dlsym(library, "curl_easy_init");
    curl.setopt_long = (int (*)(CURL *, int, long))setopt;
    curl.setopt_pointer = (int (*)(CURL *, int, const void *))setopt;
    curl.setopt_off = (int (*)(CURL *, int, long long))setopt;
    curl.setopt_function = (int (*)(CURL *, int, size_t (*)(char *, size_t, size_t, void *)))setopt;
    curl.perform = (int (*)(CURL *))dlsym(library, "curl_easy_perform");
    curl.getinfo_long = (int (*)(CURL *, int, long *))getinfo;
    curl.getinfo_string = (int (*)(CURL *, int, char **))getinfo;
    curl.cleanup = (void (*)(CURL *))dlsym(library, "curl_easy_cleanup");
    curl.strerror = (const char *(*)(int))dlsym(library, "curl_easy_strerror");
    if (!curl.global_init || !curl.easy_init || !setopt || !getinfo || !curl.perform || !curl.cleanup || !curl.strerror) {
        snprintf(load_error_text, sizeof load_error_text, "the libcurl on this machine lacks curl_easy_* functions");
        curl.load_error = load_error_text;
        return;
    }
    if (curl.global_init(GLOBAL_DEFAULT) != CODE_OK) {
        snprintf(load_error_text, sizeof load_error_text, "libcurl could not be initialised");
        curl.load_error = load_error_text;
    }
}

struct sink {
    unsigned char *data;
    size_t length, capacity;
    long long limit;
    int too_big, out_of_memory;
};

static size_t receive(char *chunk, size_t size, size_t count, void *context) {
    struct sink *sink = context;
    size_t bytes = size * count;
    if ((long long)(sink->length + bytes) > sink->limit) {
        sink->too_big = 1;
        return 0;
    }
    if (sink->length + bytes > sink->capacity) {
        size_t capacity = sink->capacity ? sink->capacity : 65536;
        while (capacity < sink->length + bytes) capacity *= 2;
        unsigned char *grown = realloc(sink->data, capacity);
        if (!grown) {
            sink->out_of_memory = 1;
            return 0;
        }
        sink->data = grown;
        sink->capacity = capacity;
    }
    memcpy(sink->data + sink->length, chunk, bytes);
    sink->length += bytes;
    return bytes;
}

int provision_http_get(const char *url, long timeout_seconds, long long max_bytes, long *status, unsigned char **body,
                       size_t *body_length, char **location, char *error, size_t error_length) {
    *status = 0;
    *body = NULL;
    *body_length = 0;
    *location = NULL;
    pthread_once(&curl_once, load_curl);
    if (curl.load_error) {
        snprintf(error, error_length, "%s", curl.load_error);
        return -1;
    }
    CURL *handle = curl.easy_init();
    if (!handle) {
        snprintf(error, error_length, "libcurl could not make a transfer");
        return -1;
    }
    char curl_error[ERROR_SIZE] = "";
    struct sink sink = {.limit = max_bytes};
    curl.setopt_pointer(handle, OPT_URL, url);
    curl.setopt_long(handle, OPT_FOLLOWLOCATION, 0);
    curl.setopt_long(handle, OPT_NOSIGNAL, 1);
    curl.setopt_long(handle, OPT_CONNECTTIMEOUT, timeout_seconds);
    curl.setopt_long(handle, OPT_TIMEOUT, timeout_seconds * 4);
    curl.setopt_long(handle, OPT_LOW_SPEED_LIMIT, 1);
    curl.setopt_long(handle, OPT_LOW_SPEED_TIME, timeout_seconds);
    curl.setopt_off(handle, OPT_MAXFILESIZE_LARGE, max_bytes);
    curl.setopt_pointer(handle, OPT_USERAGENT, "provision");
    curl.setopt_pointer(handle, OPT_ERRORBUFFER, curl_error);
    curl.setopt_function(handle, OPT_WRITEFUNCTION, receive);
    curl.setopt_pointer(handle, OPT_WRITEDATA, &sink);
    int code = curl.perform(handle);
    int result = 0;
    if (code == CODE_FILESIZE_EXCEEDED || (code == CODE_WRITE_ERROR && sink.too_big)) {
        result = 1;
    } else if (code == CODE_WRITE_ERROR && sink.out_of_memory) {
        snprintf(error, error_length, "out of memory after %zu bytes", sink.length);
        result = -1;
    } else if (code != CODE_OK) {
        snprintf(error, error_length, "%s", curl_error[0] ? curl_error : curl.strerror(code));
        result = -1;
    } else {
        curl.getinfo_long(handle, INFO_RESPONSE_CODE, status);
        char *redirect = NULL;
        if (curl.getinfo_string(handle, INFO_REDIRECT_URL, &redirect) == CODE_OK && redirect) *location = strdup(redirect);
        *body = sink.data;
        *body_length = sink.length;
        sink.data = NULL;
    }
    free(sink.data);
    curl.cleanup(handle);
    return result;
}
