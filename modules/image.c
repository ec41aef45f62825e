/*
 * image.c - PNG, JPEG and WebP images given as bytes, through libvips.
 *
 *   image.info      [bytes]                                 -> map
 *   image.thumbnail [bytes, width, {height?, format?, quality?}] -> bin
 *   image.convert   [bytes, format, {quality?}]             -> bin
 *
 * Only three decoders are ever reached: the format is recognised here from
 * the first bytes and the matching libvips loader is called by name, never
 * libvips' own sniffing, which would also try TIFF, SVG, PDF, ImageMagick and
 * the rest of what the installed libvips was built with. Each loader is
 * told to fail on corrupt data (fail_on=error) rather than return a grey
 * image, and to read sequentially, so decoding streams in strips instead of
 * holding (or spilling to a temporary file) the whole image. Before any
 * pixel is decoded, the header's size is checked against max_pixels
 * ([module image] max_pixels, default IMAGE_DEFAULT_MAX_PIXELS): a 100 KiB
 * PNG can claim 60000 x 60000 pixels. Thumbnails never enlarge, so no output
 * is bigger than the input's pixel count.
 *
 * All ops are PURE (same bytes in, same bytes out for one libvips build) and
 * BLOCKING (decoding is CPU work on megabytes).
 *
 * libvips is process-wide and cannot be shut down and started again in one
 * process: init calls vips_init (which does nothing the second time) and
 * fini does not call vips_shutdown. It also starts threads of its own, and
 * Debian links libvips and GLib with -z nodelete, so none of it leaves a
 * process that loaded it. That is why this module prefers a worker process of
 * its own: ending the worker is the only way to get its memory back.
 * init also turns off libvips' operation cache (it would keep up to 100
 * operations and their pixels between calls) and runs each call's pipeline
 * on one thread: the daemon's pool already runs calls in parallel.
 */
#include <lmms/lmms-module.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <vips/vips.h>

#include "args.h"

#ifdef LMMS_MODULE_ISOLATION
LMMS_MODULE_ISOLATION("process");
#endif

#define IMAGE_MAX_INPUT (32u << 20)
#define IMAGE_DEFAULT_MAX_PIXELS 50000000ull
#define IMAGE_MAX_DIMENSION 16384 /* of a requested thumbnail */
#define IMAGE_DEFAULT_QUALITY 75

enum image_format { IMG_NONE = 0, IMG_PNG, IMG_JPEG, IMG_WEBP };

static const char *const format_names[] = { "", "png", "jpeg", "webp" };

struct image_state {
	uint64_t max_pixels;
	guint log_handler; /* ours, for libvips' warnings; removed in fini */
};

/*
 * libvips reports what it tolerates or what led to an error as GLib
 * warnings, which would go to the daemon's stderr; the error itself reaches
 * the caller through fail(). The handler lives in this module, so fini must
 * remove it before the module is unmapped (libvips is not).
 */
static void drop_log(const gchar *domain, GLogLevelFlags level, const gchar *msg, gpointer data)
{
}

/* ---- module state -------------------------------------------------------- */

static int image_init(const lmms_host *h, lmms_call *c, void **state)
{
	const char *v = NULL;
	struct image_state *s;

	s = calloc(1, sizeof(*s));
	if (!s)
		return h->fail(c, LMMS_FAIL_MODULE, "image: out of memory");
	s->max_pixels = IMAGE_DEFAULT_MAX_PIXELS;
	if (LMMS_HOST_HAS(h, setting) && h->setting)
		v = h->setting(c, "max_pixels");
	if (v) {
		char *end;

		errno = 0;
		s->max_pixels = strtoull(v, &end, 10);
		if (errno || end == v || *end || s->max_pixels == 0 || v[0] == '-') {
			free(s);
			return h->fail(c, LMMS_FAIL_MODULE,
				       "image: max_pixels must be a positive integer, not '%s'", v);
		}
	}
	if (VIPS_INIT("lmms-image") != 0) {
		free(s);
		return h->fail(c, LMMS_FAIL_MODULE, "image: libvips does not start");
	}
	vips_cache_set_max(0);
	vips_concurrency_set(1);
	s->log_handler = g_log_set_handler("VIPS", G_LOG_LEVEL_WARNING, drop_log, NULL);
	*state = s;
	return 0;
}

static void image_fini(const lmms_host *h, void *state)
{
	struct image_state *s = state;

	if (!s)
		return;
	g_log_remove_handler("VIPS", s->log_handler);
	free(s);
}

/* ---- helpers ------------------------------------------------------------- */

static enum image_format sniff(const unsigned char *p, size_t n)
{
	if (n >= 8 && memcmp(p, "\x89PNG\r\n\x1a\n", 8) == 0)
		return IMG_PNG;
	if (n >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff)
		return IMG_JPEG;
	if (n >= 12 && memcmp(p, "RIFF", 4) == 0 && memcmp(p + 8, "WEBP", 4) == 0)
		return IMG_WEBP;
	return IMG_NONE;
}

static enum image_format format_named(const char *p, size_t n)
{
	for (int f = IMG_PNG; f <= IMG_WEBP; f++) {
		if (strlen(format_names[f]) == n && strncasecmp(p, format_names[f], n) == 0)
			return (enum image_format)f;
	}
	if (n == 3 && strncasecmp(p, "jpg", 3) == 0)
		return IMG_JPEG;
	return IMG_NONE;
}

/*
 * libvips reports errors into one process-wide buffer; take its text (and
 * clear it) for the message. Concurrent failing calls may see each other's
 * text; the class of the error is still right.
 */
static int vips_failed(const lmms_host *h, lmms_call *c, const char *op, const char *what)
{
	char *msg = vips_error_buffer_copy();
	size_t n = msg ? strcspn(msg, "\n") : 0;
	int r;

	r = h->fail(c, LMMS_FAIL_MODULE, "%s: %s%s%.*s", op, what, n ? ": " : "", (int)n,
		    n ? msg : "");
	g_free(msg);
	return r;
}

/* The image bytes of argument 0, checked to be one of our formats. */
static int arg_image(const lmms_host *h, lmms_call *c, const char *op, const void **p,
		     size_t *n, enum image_format *f)
{
	if (h->arg_type(c, 0) != LMMS_T_BIN || h->arg_bytes(c, 0, p, n) < 0)
		return h->fail(c, LMMS_FAIL_PARAMS, "%s: the first param must be the image (bin)",
			       op);
	if (*n > IMAGE_MAX_INPUT)
		return h->fail(c, LMMS_FAIL_PARAMS, "%s: image of %zu bytes exceeds %u", op, *n,
			       IMAGE_MAX_INPUT);
	*f = sniff(*p, *n);
	if (*f == IMG_NONE)
		return h->fail(c, LMMS_FAIL_PARAMS, "%s: not a PNG, JPEG or WebP image", op);
	return 0;
}

/*
 * Decoder for f, header only (libvips decodes pixels when they are asked
 * for), then the pixel bound. The image refers to p, which must outlive it.
 */
static int load(const lmms_host *h, lmms_call *c, const struct image_state *s, const char *op,
		const void *p, size_t n, enum image_format f, VipsImage **out)
{
	void *buf = (void *)p; /* libvips' loaders take void * but only read */
	uint64_t pixels;
	int rc;

	*out = NULL;
	switch (f) {
	case IMG_PNG:
		rc = vips_pngload_buffer(buf, n, out, "access", VIPS_ACCESS_SEQUENTIAL, "fail_on",
					 VIPS_FAIL_ON_ERROR, NULL);
		break;
	case IMG_JPEG:
		rc = vips_jpegload_buffer(buf, n, out, "access", VIPS_ACCESS_SEQUENTIAL, "fail_on",
					  VIPS_FAIL_ON_ERROR, NULL);
		break;
	case IMG_WEBP:
		rc = vips_webpload_buffer(buf, n, out, "access", VIPS_ACCESS_SEQUENTIAL, "fail_on",
					  VIPS_FAIL_ON_ERROR, NULL);
		break;
	default:
		rc = -1;
		break;
	}
	if (rc != 0)
		return vips_failed(h, c, op, "cannot read the image");
	pixels = (uint64_t)vips_image_get_width(*out) * (uint64_t)vips_image_get_height(*out);
	if (pixels > s->max_pixels) {
		int r = h->fail(c, LMMS_FAIL_MODULE,
				"%s: image of %dx%d pixels exceeds the limit of %llu pixels", op,
				vips_image_get_width(*out), vips_image_get_height(*out),
				(unsigned long long)s->max_pixels);

		g_object_unref(*out);
		*out = NULL;
		return r;
	}
	return 0;
}

/*
 * Encodes im as f and returns the bytes. JPEG has no alpha channel, so an
 * image with one is flattened onto white first rather than left to the
 * encoder's idea of what four bands mean.
 */
static int save(const lmms_host *h, lmms_call *c, const char *op, VipsImage *im,
		enum image_format f, int quality, bool strip)
{
	VipsImage *flat = NULL;
	void *buf = NULL;
	size_t len = 0;
	int rc, r;

	if (f == IMG_JPEG && vips_image_hasalpha(im)) {
		VipsArrayDouble *white = vips_array_double_newv(1, 255.0);

		rc = vips_flatten(im, &flat, "background", white, NULL);
		vips_area_unref(VIPS_AREA(white));
		if (rc != 0)
			return vips_failed(h, c, op, "cannot remove the alpha channel");
		im = flat;
	}
	switch (f) {
	case IMG_PNG:
		rc = vips_pngsave_buffer(im, &buf, &len, "strip", strip, NULL);
		break;
	case IMG_JPEG:
		rc = vips_jpegsave_buffer(im, &buf, &len, "Q", quality, "strip", strip, NULL);
		break;
	case IMG_WEBP:
		rc = vips_webpsave_buffer(im, &buf, &len, "Q", quality, "strip", strip, NULL);
		break;
	default:
		rc = -1;
		break;
	}
	if (flat)
		g_object_unref(flat);
	/* Pixels are decoded while encoding: a corrupt body fails here. */
	if (rc != 0)
		return vips_failed(h, c, op, "cannot write the image");
	r = h->ret_bin(c, buf, len);
	g_free(buf);
	return r;
}

struct out_opts {
	enum image_format format; /* IMG_NONE: as the input */
	int quality;
	bool quality_set;
	int height; /* thumbnail only; 0: not given */
};

/* Options map at argument i: height and format only for thumbnails. */
static int parse_opts(const lmms_host *h, lmms_call *c, const char *op, size_t i,
		      bool thumbnail, struct out_opts *o)
{
	const msgpack_object *m;
	int64_t x = 0;
	modargs a;
	int r = 0;

	o->quality = IMAGE_DEFAULT_QUALITY;
	modargs_init(&a);
	if (modargs_get(h, c, i, LMMS_T_MAP, &a, &m) < 0) {
		r = h->fail(c, LMMS_FAIL_PARAMS, "%s: options must be a map", op);
		goto out;
	}
	for (uint32_t j = 0; r == 0 && m && j < m->via.map.size; j++) {
		const msgpack_object *k = &m->via.map.ptr[j].key, *v = &m->via.map.ptr[j].val;

		if (modargs_key_is(k, "quality")) {
			if (modargs_int(v, 1, 100, &x) < 0)
				r = h->fail(c, LMMS_FAIL_PARAMS,
					    "%s: quality must be an integer 1..100", op);
			o->quality = (int)x;
			o->quality_set = true;
		} else if (thumbnail && modargs_key_is(k, "height")) {
			if (modargs_int(v, 1, IMAGE_MAX_DIMENSION, &x) < 0)
				r = h->fail(c, LMMS_FAIL_PARAMS,
					    "%s: height must be an integer 1..%d", op,
					    IMAGE_MAX_DIMENSION);
			o->height = (int)x;
		} else if (thumbnail && modargs_key_is(k, "format")) {
			if (v->type != MSGPACK_OBJECT_STR ||
			    !(o->format = format_named(v->via.str.ptr, v->via.str.size)))
				r = h->fail(c, LMMS_FAIL_PARAMS,
					    "%s: format must be \"png\", \"jpeg\" or \"webp\"", op);
		} else {
			r = h->fail(c, LMMS_FAIL_PARAMS, "%s: unknown option '%.*s'", op,
				    k->type == MSGPACK_OBJECT_STR ? (int)k->via.str.size : 1,
				    k->type == MSGPACK_OBJECT_STR ? k->via.str.ptr : "?");
		}
	}
out:
	modargs_fini(&a);
	return r;
}

/* quality means something to the lossy encoders only: say so, not ignore. */
static int check_quality(const lmms_host *h, lmms_call *c, const char *op,
			 const struct out_opts *o, enum image_format f)
{
	if (o->quality_set && f == IMG_PNG)
		return h->fail(c, LMMS_FAIL_PARAMS, "%s: quality applies to jpeg and webp only",
			       op);
	return 0;
}

/* ---- ops ------------------------------------------------------------------- */

static int op_info(const lmms_host *h, lmms_call *c, void *state)
{
	const char *op = "image.info";
	enum image_format f;
	VipsImage *im;
	const void *p;
	size_t n;
	int r;

	if (h->arg_count(c) != 1)
		return h->fail(c, LMMS_FAIL_PARAMS, "image.info takes [image (bin)]");
	if ((r = arg_image(h, c, op, &p, &n, &f)) < 0 ||
	    (r = load(h, c, state, op, p, n, f, &im)) < 0)
		return r;
	r = h->ret_map(c, 8);
#define KV(key, call)                                      \
	do {                                               \
		if (r == 0)                                \
			r = h->ret_str(c, key, strlen(key)); \
		if (r == 0)                                \
			r = (call);                        \
	} while (0)
	KV("width", h->ret_int(c, vips_image_get_width(im)));
	KV("height", h->ret_int(c, vips_image_get_height(im)));
	KV("bands", h->ret_int(c, vips_image_get_bands(im)));
	KV("format", h->ret_str(c, format_names[f], strlen(format_names[f])));
	{
		const char *bf = vips_enum_nick(VIPS_TYPE_BAND_FORMAT, vips_image_get_format(im));
		const char *in = vips_enum_nick(VIPS_TYPE_INTERPRETATION,
						vips_image_get_interpretation(im));

		KV("band_format", h->ret_str(c, bf, strlen(bf)));
		KV("interpretation", h->ret_str(c, in, strlen(in)));
	}
	KV("has_alpha", h->ret_bool(c, vips_image_hasalpha(im)));
	KV("pages", h->ret_int(c, vips_image_get_n_pages(im)));
#undef KV
	g_object_unref(im);
	return r;
}

static int op_thumbnail(const lmms_host *h, lmms_call *c, void *state)
{
	const char *op = "image.thumbnail";
	struct out_opts o = { 0 };
	VipsImage *im = NULL, *th = NULL;
	enum image_format f;
	const void *p;
	int64_t width;
	size_t n;
	int r;

	if (h->arg_count(c) < 2 || h->arg_count(c) > 3 || h->arg_int(c, 1, &width) < 0 ||
	    width < 1 || width > IMAGE_MAX_DIMENSION)
		return h->fail(c, LMMS_FAIL_PARAMS,
			       "image.thumbnail takes [image (bin), width 1..%d, options?]",
			       IMAGE_MAX_DIMENSION);
	if ((r = arg_image(h, c, op, &p, &n, &f)) < 0 ||
	    (r = parse_opts(h, c, op, 2, true, &o)) < 0)
		return r;
	if (o.format == IMG_NONE)
		o.format = f;
	if ((r = check_quality(h, c, op, &o, o.format)) < 0 ||
	    (r = load(h, c, state, op, p, n, f, &im)) < 0)
		return r;
	/*
	 * Fit inside width x height keeping the aspect ratio; without a height
	 * the width alone decides. VIPS_SIZE_DOWN: never enlarge, so the
	 * output has at most the input's pixels, which were bounded above.
	 */
	if (vips_thumbnail_image(im, &th, (int)width, "height",
				 o.height ? o.height : VIPS_MAX_COORD, "size", VIPS_SIZE_DOWN,
				 NULL) != 0)
		r = vips_failed(h, c, op, "cannot scale the image");
	else
		r = save(h, c, op, th, o.format, o.quality, true);
	if (th)
		g_object_unref(th);
	g_object_unref(im);
	return r;
}

static int op_convert(const lmms_host *h, lmms_call *c, void *state)
{
	const char *op = "image.convert";
	struct out_opts o = { 0 };
	enum image_format f, to;
	VipsImage *im;
	const void *p;
	const char *fs;
	size_t n, fn;
	int r;

	if (h->arg_count(c) < 2 || h->arg_count(c) > 3 || h->arg_str(c, 1, &fs, &fn) < 0)
		return h->fail(c, LMMS_FAIL_PARAMS,
			       "image.convert takes [image (bin), format, options?]");
	if (!(to = format_named(fs, fn)))
		return h->fail(c, LMMS_FAIL_PARAMS,
			       "image.convert: format must be \"png\", \"jpeg\" or \"webp\"");
	if ((r = arg_image(h, c, op, &p, &n, &f)) < 0 ||
	    (r = parse_opts(h, c, op, 2, false, &o)) < 0 ||
	    (r = check_quality(h, c, op, &o, to)) < 0 ||
	    (r = load(h, c, state, op, p, n, f, &im)) < 0)
		return r;
	/* Metadata is kept (EXIF orientation included): a conversion changes
	 * the encoding, not what the picture says about itself. */
	r = save(h, c, op, im, to, o.quality, false);
	g_object_unref(im);
	return r;
}

static const lmms_op image_ops[] = {
	{ .name = "info", .fn = op_info, .flags = LMMS_OP_PURE | LMMS_OP_BLOCKING,
	  .doc = "width, height, bands, format, ... of a PNG, JPEG or WebP image" },
	{ .name = "thumbnail", .fn = op_thumbnail, .flags = LMMS_OP_PURE | LMMS_OP_BLOCKING,
	  .doc = "shrink an image to fit width (x height), as png, jpeg or webp" },
	{ .name = "convert", .fn = op_convert, .flags = LMMS_OP_PURE | LMMS_OP_BLOCKING,
	  .doc = "re-encode an image as png, jpeg or webp" },
};

LMMS_MODULE(.name = "image", .version = "1.0", LMMS_OPS(image_ops),
	    .description = "PNG/JPEG/WebP metadata, thumbnails and conversion (libvips)",
	    .init = image_init, .fini = image_fini);
