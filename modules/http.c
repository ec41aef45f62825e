/*
 * http.c - HTTP and HTTPS requests through libcurl.
 *
 *   http.get  [url, {headers?, timeout_ms?, max_bytes?, follow?}]
 *   http.post [url, body, {headers?, content_type?, timeout_ms?, max_bytes?, follow?}]
 *
 * Both answer {status, headers, body}: the status of the last response, its
 * headers as a map (names lower-cased, repeated names joined with ", ") and
 * its body as bin. A 404 is an answer, not an error; failing to get any
 * answer (refused, timed out, over a limit) is module_error.
 *
 * Everything a request may cost is bounded before or while it runs: the URL
 * must be http or https (other schemes are refused up front, and libcurl is
 * told the same for redirects), redirects are followed only when asked and at
 * most HTTP_MAX_REDIRS of them, the whole transfer is limited by timeout_ms,
 * and the body by max_bytes, checked twice: against Content-Length before
 * anything is received, and against the bytes actually received, aborting
 * the transfer as soon as they would pass the cap (no Content-Length, or a
 * lying one). Response headers are bounded the same way.
 *
 * Each call uses its own easy handle, so concurrent BLOCKING calls share
 * nothing but libcurl's global state, set up in init and torn down in fini.
 * Proxies from the environment are ignored (a daemon's environment is an
 * accident); [module http] proxy = URL sets one explicitly.
 *
 * Why this module wants its own process: libcurl links libcrypto, which
 * Debian builds -z nodelete, so its memory never leaves a process that
 * mapped it; and libcurl's threaded resolver may leave a detached thread
 * finishing a slow DNS lookup after a call timed out, which must not outlive
 * the code it runs.
 */
#include <lmms/lmms-module.h>

#include <curl/curl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "args.h"

#ifdef LMMS_MODULE_ISOLATION
LMMS_MODULE_ISOLATION("process");
#endif

#define HTTP_MAX_URL 8192
#define HTTP_MAX_REQ_BODY (32u << 20)
#define HTTP_MAX_REQ_HEADERS 64
#define HTTP_MAX_REQ_HEADER_BYTES 8192 /* one "name: value" line */
#define HTTP_DEFAULT_TIMEOUT_MS 30000
#define HTTP_MAX_TIMEOUT_MS 300000
#define HTTP_DEFAULT_MAX_BYTES (1u << 20)
#define HTTP_MAX_MAX_BYTES (64u << 20)
#define HTTP_MAX_REDIRS 5
#define HTTP_MAX_RESP_HEADERS 128
#define HTTP_MAX_RESP_HEADER_BYTES (64u << 10)
#define HTTP_USER_AGENT "lmms-http/1.0"

struct http_state {
	char *proxy; /* NULL: no proxy, whatever the environment says */
};

/* One response header, as offsets into http_req.hbuf. */
struct http_hdr {
	uint32_t name, name_len, value, value_len;
};

struct http_req {
	const char *op; /* "http.get" / "http.post", for messages */

	/* request */
	const void *post; /* body of a POST, NULL for GET */
	size_t post_len;
	struct curl_slist *headers;
	bool has_content_type; /* a Content-Type among the headers */
	long timeout_ms;
	size_t max_bytes;
	bool follow;

	/* response */
	unsigned char *body;
	size_t len, cap;
	bool body_over; /* aborted: the body passed max_bytes */
	bool oom; /* aborted: no memory for the body */
	char hbuf[HTTP_MAX_RESP_HEADER_BYTES];
	size_t hbuf_len;
	struct http_hdr hdr[HTTP_MAX_RESP_HEADERS];
	uint32_t n_hdr;
	bool headers_over; /* aborted: the headers passed their bounds */
	char errbuf[CURL_ERROR_SIZE];
};

/* ---- module state -------------------------------------------------------- */

static int http_init(const lmms_host *h, lmms_call *c, void **state)
{
	const char *proxy = NULL;
	struct http_state *s;
	CURLcode rc;

	s = calloc(1, sizeof(*s));
	if (!s)
		return h->fail(c, LMMS_FAIL_MODULE, "http: out of memory");
	if (LMMS_HOST_HAS(h, setting) && h->setting)
		proxy = h->setting(c, "proxy");
	if (proxy && *proxy && !(s->proxy = strdup(proxy))) {
		free(s);
		return h->fail(c, LMMS_FAIL_MODULE, "http: out of memory");
	}
	/* Reference counted and thread-safe in libcurl >= 7.84, so another user
	 * of libcurl in the same process is not disturbed by our fini. */
	rc = curl_global_init(CURL_GLOBAL_DEFAULT);
	if (rc != CURLE_OK) {
		free(s->proxy);
		free(s);
		return h->fail(c, LMMS_FAIL_MODULE, "http: libcurl: %s", curl_easy_strerror(rc));
	}
	*state = s;
	return 0;
}

static void http_fini(const lmms_host *h, void *state)
{
	struct http_state *s = state;

	if (!s)
		return;
	curl_global_cleanup();
	free(s->proxy);
	free(s);
}

/* ---- request options ----------------------------------------------------- */

/* RFC 9110 token characters: what a header name may consist of. */
static bool is_tchar(unsigned char ch)
{
	return (ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
	       (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static bool name_is(const char *p, size_t n, const char *want)
{
	return strlen(want) == n && strncasecmp(p, want, n) == 0;
}

/* Appends "name: value" (or "name;" for an empty value, libcurl's way of
 * sending one rather than removing the header). */
static int add_header(const lmms_host *h, lmms_call *c, struct http_req *r, const char *name,
		      size_t nlen, const char *value, size_t vlen)
{
	char line[HTTP_MAX_REQ_HEADER_BYTES + 4];
	struct curl_slist *l;

	if (nlen == 0 || nlen + vlen + 2 > HTTP_MAX_REQ_HEADER_BYTES)
		return h->fail(c, LMMS_FAIL_PARAMS, "%s: header '%.*s' is empty or over %d bytes",
			       r->op, (int)(nlen < 64 ? nlen : 64), name,
			       HTTP_MAX_REQ_HEADER_BYTES);
	for (size_t i = 0; i < nlen; i++) {
		if (!is_tchar((unsigned char)name[i]))
			return h->fail(c, LMMS_FAIL_PARAMS,
				       "%s: header name '%.*s' is not an HTTP token", r->op,
				       (int)(nlen < 64 ? nlen : 64), name);
	}
	/* Line breaks would let a value smuggle in headers of its own. */
	for (size_t i = 0; i < vlen; i++) {
		if (value[i] == '\r' || value[i] == '\n' || value[i] == '\0')
			return h->fail(c, LMMS_FAIL_PARAMS,
				       "%s: value of header '%.*s' contains CR, LF or NUL", r->op,
				       (int)nlen, name);
	}
	/* Framing is libcurl's job: a caller's Content-Length could desync it. */
	if (name_is(name, nlen, "content-length") || name_is(name, nlen, "transfer-encoding"))
		return h->fail(c, LMMS_FAIL_PARAMS, "%s: header '%.*s' is set by the module",
			       r->op, (int)nlen, name);
	if (name_is(name, nlen, "content-type"))
		r->has_content_type = true;
	memcpy(line, name, nlen);
	if (vlen) {
		memcpy(line + nlen, ": ", 2);
		memcpy(line + nlen + 2, value, vlen);
		line[nlen + 2 + vlen] = '\0';
	} else {
		memcpy(line + nlen, ";", 2);
	}
	l = curl_slist_append(r->headers, line);
	if (!l)
		return h->fail(c, LMMS_FAIL_MODULE, "%s: out of memory", r->op);
	r->headers = l;
	return 0;
}

static int parse_headers(const lmms_host *h, lmms_call *c, struct http_req *r,
			 const msgpack_object *v)
{
	if (v->type != MSGPACK_OBJECT_MAP)
		return h->fail(c, LMMS_FAIL_PARAMS, "%s: headers must be a map of str to str",
			       r->op);
	if (v->via.map.size > HTTP_MAX_REQ_HEADERS)
		return h->fail(c, LMMS_FAIL_PARAMS, "%s: more than %d headers", r->op,
			       HTTP_MAX_REQ_HEADERS);
	for (uint32_t i = 0; i < v->via.map.size; i++) {
		const msgpack_object *k = &v->via.map.ptr[i].key, *val = &v->via.map.ptr[i].val;

		if (k->type != MSGPACK_OBJECT_STR || val->type != MSGPACK_OBJECT_STR)
			return h->fail(c, LMMS_FAIL_PARAMS,
				       "%s: headers must be a map of str to str", r->op);
		if (add_header(h, c, r, k->via.str.ptr, k->via.str.size, val->via.str.ptr,
			       val->via.str.size) < 0)
			return -1;
	}
	return 0;
}

/* Options map at argument i; content_type is accepted only by post. */
static int parse_options(const lmms_host *h, lmms_call *c, struct http_req *r, size_t i)
{
	bool is_post = r->post != NULL;
	const msgpack_object *m, *ct = NULL;
	modargs a;
	int64_t x;
	int ret = 0;

	r->timeout_ms = HTTP_DEFAULT_TIMEOUT_MS;
	r->max_bytes = HTTP_DEFAULT_MAX_BYTES;
	modargs_init(&a);
	if (modargs_get(h, c, i, LMMS_T_MAP, &a, &m) < 0) {
		ret = h->fail(c, LMMS_FAIL_PARAMS, "%s: options must be a map", r->op);
		goto out;
	}
	for (uint32_t j = 0; m && j < m->via.map.size; j++) {
		const msgpack_object *k = &m->via.map.ptr[j].key, *v = &m->via.map.ptr[j].val;

		if (modargs_key_is(k, "headers")) {
			if ((ret = parse_headers(h, c, r, v)) < 0)
				goto out;
		} else if (modargs_key_is(k, "timeout_ms")) {
			if (modargs_int(v, 1, HTTP_MAX_TIMEOUT_MS, &x) < 0) {
				ret = h->fail(c, LMMS_FAIL_PARAMS,
					      "%s: timeout_ms must be an integer 1..%d", r->op,
					      HTTP_MAX_TIMEOUT_MS);
				goto out;
			}
			r->timeout_ms = (long)x;
		} else if (modargs_key_is(k, "max_bytes")) {
			if (modargs_int(v, 0, HTTP_MAX_MAX_BYTES, &x) < 0) {
				ret = h->fail(c, LMMS_FAIL_PARAMS,
					      "%s: max_bytes must be an integer 0..%u", r->op,
					      HTTP_MAX_MAX_BYTES);
				goto out;
			}
			r->max_bytes = (size_t)x;
		} else if (modargs_key_is(k, "follow")) {
			if (v->type != MSGPACK_OBJECT_BOOLEAN) {
				ret = h->fail(c, LMMS_FAIL_PARAMS, "%s: follow must be a bool",
					      r->op);
				goto out;
			}
			r->follow = v->via.boolean;
		} else if (is_post && modargs_key_is(k, "content_type")) {
			if (v->type != MSGPACK_OBJECT_STR) {
				ret = h->fail(c, LMMS_FAIL_PARAMS, "%s: content_type must be a str",
					      r->op);
				goto out;
			}
			ct = v;
		} else {
			ret = h->fail(c, LMMS_FAIL_PARAMS, "%s: unknown option '%.*s'", r->op,
				      k->type == MSGPACK_OBJECT_STR ? (int)k->via.str.size : 1,
				      k->type == MSGPACK_OBJECT_STR ? k->via.str.ptr : "?");
			goto out;
		}
	}
	if (ct && r->has_content_type) {
		ret = h->fail(c, LMMS_FAIL_PARAMS,
			      "%s: give content_type or a Content-Type header, not both", r->op);
		goto out;
	}
	if (is_post && !r->has_content_type) {
		static const char def[] = "application/octet-stream";

		ret = add_header(h, c, r, "Content-Type", 12, ct ? ct->via.str.ptr : def,
				 ct ? ct->via.str.size : sizeof(def) - 1);
		if (ret < 0)
			goto out;
	}
	/* libcurl would otherwise wait up to a second for a "100 Continue"
	 * before sending a larger body; "Expect:" tells it to send none. */
	if (is_post) {
		struct curl_slist *l = curl_slist_append(r->headers, "Expect:");

		if (!l)
			ret = h->fail(c, LMMS_FAIL_MODULE, "%s: out of memory", r->op);
		else
			r->headers = l;
	}
out:
	modargs_fini(&a);
	return ret;
}

/*
 * The URL as a NUL-terminated copy in buf, parsed by libcurl into *u, with
 * its scheme checked here: a wrong one is the caller's mistake and should
 * say so, rather than surface as a transfer error.
 */
static int parse_url(const lmms_host *h, lmms_call *c, struct http_req *r, char *buf,
		     CURLU **u)
{
	const char *p;
	char *scheme = NULL;
	size_t n;
	CURLUcode uc;

	if (h->arg_str(c, 0, &p, &n) < 0)
		return h->fail(c, LMMS_FAIL_PARAMS, "%s: the first param must be the URL (str)",
			       r->op);
	if (n == 0 || n >= HTTP_MAX_URL || memchr(p, '\0', n))
		return h->fail(c, LMMS_FAIL_PARAMS, "%s: URL is empty, over %d bytes or has NUL",
			       r->op, HTTP_MAX_URL - 1);
	memcpy(buf, p, n);
	buf[n] = '\0';
	*u = curl_url();
	if (!*u)
		return h->fail(c, LMMS_FAIL_MODULE, "%s: out of memory", r->op);
	uc = curl_url_set(*u, CURLUPART_URL, buf, 0);
	if (uc != CURLUE_OK)
		return h->fail(c, LMMS_FAIL_PARAMS, "%s: bad URL: %s", r->op, curl_url_strerror(uc));
	uc = curl_url_get(*u, CURLUPART_SCHEME, &scheme, 0);
	if (uc != CURLUE_OK || (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0)) {
		curl_free(scheme);
		return h->fail(c, LMMS_FAIL_PARAMS, "%s: only http and https URLs are allowed",
			       r->op);
	}
	curl_free(scheme);
	return 0;
}

/* ---- receiving ----------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t nmemb, void *data)
{
	struct http_req *r = data;
	size_t n = nmemb; /* size is always 1 for write callbacks */

	(void)size;
	if (n > r->max_bytes - r->len) {
		r->body_over = true;
		return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
	}
	if (r->len + n > r->cap) {
		size_t cap = r->cap ? r->cap : 16384;
		unsigned char *b;

		while (cap < r->len + n)
			cap *= 2;
		if (cap > r->max_bytes)
			cap = r->max_bytes;
		b = realloc(r->body, cap);
		if (!b) {
			r->oom = true;
			return 0;
		}
		r->body = b;
		r->cap = cap;
	}
	memcpy(r->body + r->len, p, n);
	r->len += n;
	return n;
}

static size_t trim_end(const char *p, size_t n)
{
	while (n && (p[n - 1] == '\r' || p[n - 1] == '\n' || p[n - 1] == ' ' || p[n - 1] == '\t'))
		n--;
	return n;
}

/*
 * One header line per call (libcurl guarantees whole lines). A status line
 * starts a new response (after a redirect or a 1xx), whose headers replace
 * what was kept, so the map describes the response whose body we return.
 */
static size_t on_header(char *p, size_t size, size_t nmemb, void *data)
{
	struct http_req *r = data;
	size_t n = trim_end(p, nmemb), colon, v;
	struct http_hdr *hd;

	(void)size;
	if (n >= 5 && memcmp(p, "HTTP/", 5) == 0) {
		r->n_hdr = 0;
		r->hbuf_len = 0;
		return nmemb;
	}
	if (n == 0)
		return nmemb;
	if (p[0] == ' ' || p[0] == '\t') {
		/* obsolete line folding: continues the previous value */
		if (r->n_hdr == 0)
			return nmemb;
		hd = &r->hdr[r->n_hdr - 1];
		if (hd->value + hd->value_len != r->hbuf_len || r->hbuf_len + n > sizeof(r->hbuf)) {
			r->headers_over = true;
			return 0;
		}
		r->hbuf[r->hbuf_len] = ' ';
		memcpy(r->hbuf + r->hbuf_len + 1, p + 1, n - 1);
		r->hbuf_len += n;
		hd->value_len += (uint32_t)n;
		return nmemb;
	}
	colon = 0;
	while (colon < n && p[colon] != ':')
		colon++;
	if (colon == 0 || colon == n)
		return nmemb; /* not a header line: nothing to keep */
	v = colon + 1;
	while (v < n && (p[v] == ' ' || p[v] == '\t'))
		v++;
	if (r->n_hdr == HTTP_MAX_RESP_HEADERS || r->hbuf_len + colon + (n - v) > sizeof(r->hbuf)) {
		r->headers_over = true;
		return 0;
	}
	hd = &r->hdr[r->n_hdr++];
	hd->name = (uint32_t)r->hbuf_len;
	hd->name_len = (uint32_t)colon;
	for (size_t i = 0; i < colon; i++) {
		char ch = p[i];

		r->hbuf[r->hbuf_len++] = ch >= 'A' && ch <= 'Z' ? (char)(ch - 'A' + 'a') : ch;
	}
	hd->value = (uint32_t)r->hbuf_len;
	hd->value_len = (uint32_t)(n - v);
	memcpy(r->hbuf + r->hbuf_len, p + v, n - v);
	r->hbuf_len += n - v;
	return nmemb;
}

/* ---- the answer ---------------------------------------------------------- */

static bool same_name(const struct http_req *r, const struct http_hdr *a,
		      const struct http_hdr *b)
{
	return a->name_len == b->name_len &&
	       memcmp(r->hbuf + a->name, r->hbuf + b->name, a->name_len) == 0;
}

/* The headers as a map: one key per name, repeated ones joined with ", "
 * (RFC 9110 5.3), in the order they first appeared. */
static int ret_headers(const lmms_host *h, lmms_call *c, const struct http_req *r)
{
	char *joined = malloc(r->hbuf_len + 2 * (size_t)r->n_hdr + 1);
	uint32_t keys = 0;
	int ret;

	if (!joined)
		return h->fail(c, LMMS_FAIL_MODULE, "%s: out of memory", r->op);
	for (uint32_t i = 0; i < r->n_hdr; i++) {
		uint32_t j = 0;

		while (j < i && !same_name(r, &r->hdr[j], &r->hdr[i]))
			j++;
		keys += j == i;
	}
	ret = h->ret_map(c, keys);
	for (uint32_t i = 0; ret == 0 && i < r->n_hdr; i++) {
		const struct http_hdr *hd = &r->hdr[i];
		size_t n = 0;
		uint32_t j = 0;

		while (j < i && !same_name(r, &r->hdr[j], hd))
			j++;
		if (j < i)
			continue; /* already emitted with the first of its name */
		for (j = i; j < r->n_hdr; j++) {
			if (!same_name(r, &r->hdr[j], hd))
				continue;
			if (n) {
				memcpy(joined + n, ", ", 2);
				n += 2;
			}
			memcpy(joined + n, r->hbuf + r->hdr[j].value, r->hdr[j].value_len);
			n += r->hdr[j].value_len;
		}
		ret = h->ret_str(c, r->hbuf + hd->name, hd->name_len);
		if (ret == 0)
			ret = h->ret_str(c, joined, n);
	}
	free(joined);
	return ret;
}

static int transfer_failed(const lmms_host *h, lmms_call *c, const struct http_req *r,
			   CURLcode rc)
{
	if (rc == CURLE_OPERATION_TIMEDOUT)
		return h->fail(c, LMMS_FAIL_MODULE, "%s: timed out after %ld ms", r->op,
			       r->timeout_ms);
	if (r->body_over || rc == CURLE_FILESIZE_EXCEEDED)
		return h->fail(c, LMMS_FAIL_MODULE, "%s: response body exceeds max_bytes (%zu)",
			       r->op, r->max_bytes);
	if (r->oom)
		return h->fail(c, LMMS_FAIL_MODULE, "%s: out of memory", r->op);
	if (r->headers_over)
		return h->fail(c, LMMS_FAIL_MODULE,
			       "%s: response headers exceed %d lines or %u bytes", r->op,
			       HTTP_MAX_RESP_HEADERS, HTTP_MAX_RESP_HEADER_BYTES);
	if (rc == CURLE_TOO_MANY_REDIRECTS)
		return h->fail(c, LMMS_FAIL_MODULE, "%s: more than %d redirects", r->op,
			       HTTP_MAX_REDIRS);
	if (rc == CURLE_UNSUPPORTED_PROTOCOL)
		return h->fail(c, LMMS_FAIL_MODULE,
			       "%s: redirected to a scheme other than http or https", r->op);
	return h->fail(c, LMMS_FAIL_MODULE, "%s: %s%s%s", r->op, curl_easy_strerror(rc),
		       r->errbuf[0] ? ": " : "", r->errbuf);
}

static int set_options(CURL *e, const struct http_state *s, struct http_req *r, CURLU *u)
{
	CURLcode rc = CURLE_OK;

#define SET(opt, val)                                        \
	do {                                                 \
		if (rc == CURLE_OK)                          \
			rc = curl_easy_setopt(e, opt, val); \
	} while (0)
	SET(CURLOPT_CURLU, u);
	SET(CURLOPT_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
	SET(CURLOPT_FOLLOWLOCATION, r->follow ? 1L : 0L);
	SET(CURLOPT_MAXREDIRS, (long)HTTP_MAX_REDIRS);
	SET(CURLOPT_NOSIGNAL, 1L); /* no SIGALRM in a threaded process */
	SET(CURLOPT_TIMEOUT_MS, r->timeout_ms);
	SET(CURLOPT_CONNECTTIMEOUT_MS, r->timeout_ms);
	SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)r->max_bytes);
	SET(CURLOPT_WRITEFUNCTION, on_body);
	SET(CURLOPT_WRITEDATA, r);
	SET(CURLOPT_HEADERFUNCTION, on_header);
	SET(CURLOPT_HEADERDATA, r);
	SET(CURLOPT_ERRORBUFFER, r->errbuf);
	SET(CURLOPT_USERAGENT, HTTP_USER_AGENT);
	SET(CURLOPT_PROXY, s->proxy ? s->proxy : "");
	if (r->headers)
		SET(CURLOPT_HTTPHEADER, r->headers);
	if (r->post) {
		SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->post_len);
		SET(CURLOPT_POSTFIELDS, r->post);
	}
#undef SET
	return rc == CURLE_OK ? 0 : -1;
}

static int request(const lmms_host *h, lmms_call *c, const struct http_state *s,
		   struct http_req *r)
{
	char url[HTTP_MAX_URL];
	CURLU *u = NULL;
	CURL *e = NULL;
	long status = 0;
	CURLcode rc;
	int ret;

	if ((ret = parse_url(h, c, r, url, &u)) < 0)
		goto out;
	e = curl_easy_init();
	if (!e || set_options(e, s, r, u) < 0) {
		ret = h->fail(c, LMMS_FAIL_MODULE, "%s: cannot set up the request", r->op);
		goto out;
	}
	rc = curl_easy_perform(e);
	if (rc != CURLE_OK) {
		ret = transfer_failed(h, c, r, rc);
		goto out;
	}
	curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
	ret = h->ret_map(c, 3);
	if (ret == 0)
		ret = h->ret_str(c, "status", 6);
	if (ret == 0)
		ret = h->ret_int(c, status);
	if (ret == 0)
		ret = h->ret_str(c, "headers", 7);
	if (ret == 0)
		ret = ret_headers(h, c, r);
	if (ret == 0)
		ret = h->ret_str(c, "body", 4);
	if (ret == 0)
		ret = h->ret_bin(c, r->body, r->len);
out:
	curl_easy_cleanup(e);
	curl_url_cleanup(u);
	return ret;
}

static struct http_req *req_new(const lmms_host *h, lmms_call *c, const char *op)
{
	struct http_req *r = calloc(1, sizeof(*r));

	if (!r)
		h->fail(c, LMMS_FAIL_MODULE, "%s: out of memory", op);
	else
		r->op = op;
	return r;
}

static void req_free(struct http_req *r)
{
	curl_slist_free_all(r->headers);
	free(r->body);
	free(r);
}

static int op_get(const lmms_host *h, lmms_call *c, void *state)
{
	struct http_req *r;
	int ret;

	if (h->arg_count(c) < 1 || h->arg_count(c) > 2)
		return h->fail(c, LMMS_FAIL_PARAMS, "http.get takes [url, options?]");
	if (!(r = req_new(h, c, "http.get")))
		return -1;
	ret = parse_options(h, c, r, 1);
	if (ret == 0)
		ret = request(h, c, state, r);
	req_free(r);
	return ret;
}

static int op_post(const lmms_host *h, lmms_call *c, void *state)
{
	struct http_req *r;
	const void *body;
	size_t n;
	int ret;

	if (h->arg_count(c) < 2 || h->arg_count(c) > 3 || h->arg_bytes(c, 1, &body, &n) < 0)
		return h->fail(c, LMMS_FAIL_PARAMS,
			       "http.post takes [url, body (str or bin), options?]");
	if (n > HTTP_MAX_REQ_BODY)
		return h->fail(c, LMMS_FAIL_PARAMS, "http.post: body of %zu bytes exceeds %u", n,
			       HTTP_MAX_REQ_BODY);
	if (!(r = req_new(h, c, "http.post")))
		return -1;
	r->post = n ? body : "";
	r->post_len = n;
	ret = parse_options(h, c, r, 2);
	if (ret == 0)
		ret = request(h, c, state, r);
	req_free(r);
	return ret;
}

static const lmms_op http_ops[] = {
	{ .name = "get", .fn = op_get, .flags = LMMS_OP_BLOCKING,
	  .doc = "GET a URL: {status, headers, body}" },
	{ .name = "post", .fn = op_post, .flags = LMMS_OP_BLOCKING,
	  .doc = "POST a body to a URL: {status, headers, body}" },
};

LMMS_MODULE(.name = "http", .version = "1.0", LMMS_OPS(http_ops),
	    .description = "bounded HTTP/HTTPS GET and POST (libcurl)", .init = http_init,
	    .fini = http_fini);
