// SPDX-License-Identifier: GPL-2.0-only
/*
 * json-check: validate a JSON document (RFC 8259, strict) and print values
 * from it, for kheapctl's guest tests (busybox has no jq).
 *
 *   json-check FILE            exit 0 if FILE is one valid JSON value
 *   json-check FILE PATH...    print the value at each PATH, one per line
 *
 * PATH is .key, [N], [*] (every element) and # (length of an array or
 * object), chained: .buffers[*].pages[0].phys, .buffers#.  Strings print
 * unquoted (escapes decoded), numbers as written, true/false/null as
 * such, objects and arrays as "{...}" / "[...]".  A path that matches
 * nothing prints nothing and makes the exit status 1.  Errors in the
 * document exit 1 with the byte offset.
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum kind { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

struct node {
	enum kind kind;
	char *text;		/* number as written, decoded string, key */
	char *key;		/* when a member of an object */
	bool b;
	size_t n;
	struct node **kids;
};

struct parser {
	const char *s;
	size_t pos, len;
	const char *err;
	int depth;
};

static bool fail(struct parser *p, const char *why)
{
	if (!p->err)
		p->err = why;
	return false;
}

static void ws(struct parser *p)
{
	while (p->pos < p->len && strchr(" \t\r\n", p->s[p->pos]))
		p->pos++;
}

static struct node *new_node(enum kind k)
{
	struct node *n = calloc(1, sizeof(*n));

	if (!n) {
		perror("json-check");
		exit(1);
	}
	n->kind = k;
	return n;
}

static void add_kid(struct node *parent, struct node *kid)
{
	parent->kids = realloc(parent->kids, (parent->n + 1) * sizeof(*parent->kids));
	if (!parent->kids) {
		perror("json-check");
		exit(1);
	}
	parent->kids[parent->n++] = kid;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = (char)tolower((unsigned char)c);
	return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static bool hex4(struct parser *p, unsigned int *v)
{
	*v = 0;
	if (p->pos + 4 > p->len)
		return fail(p, "short \\u escape");
	for (int i = 0; i < 4; i++) {
		int h = hexval(p->s[p->pos++]);

		if (h < 0)
			return fail(p, "bad \\u escape");
		*v = *v * 16 + (unsigned int)h;
	}
	return true;
}

static void put_utf8(char **o, unsigned int cp)
{
	unsigned char *u = (unsigned char *)*o;

	if (cp < 0x80) {
		*u++ = (unsigned char)cp;
	} else if (cp < 0x800) {
		*u++ = (unsigned char)(0xc0 | (cp >> 6));
		*u++ = (unsigned char)(0x80 | (cp & 0x3f));
	} else if (cp < 0x10000) {
		*u++ = (unsigned char)(0xe0 | (cp >> 12));
		*u++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		*u++ = (unsigned char)(0x80 | (cp & 0x3f));
	} else {
		*u++ = (unsigned char)(0xf0 | (cp >> 18));
		*u++ = (unsigned char)(0x80 | ((cp >> 12) & 0x3f));
		*u++ = (unsigned char)(0x80 | ((cp >> 6) & 0x3f));
		*u++ = (unsigned char)(0x80 | (cp & 0x3f));
	}
	*o = (char *)u;
}

/* Checks one UTF-8 sequence at p->pos and copies it; false if malformed. */
static bool utf8_seq(struct parser *p, char **o)
{
	const unsigned char *s = (const unsigned char *)p->s + p->pos;
	size_t left = p->len - p->pos, need;
	unsigned int cp;

	if (s[0] < 0x80)
		need = 0, cp = s[0];
	else if (s[0] >= 0xc2 && s[0] <= 0xdf)
		need = 1, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		need = 2, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		need = 3, cp = s[0] & 0x07;
	else
		return fail(p, "invalid UTF-8");
	if (need >= left)
		return fail(p, "truncated UTF-8");
	for (size_t i = 1; i <= need; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return fail(p, "invalid UTF-8");
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((need == 2 && cp < 0x800) || (need == 3 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return fail(p, "invalid UTF-8");
	memcpy(*o, s, need + 1);
	*o += need + 1;
	p->pos += need + 1;
	return true;
}

static char *parse_string(struct parser *p)
{
	char *out, *o;

	if (p->pos >= p->len || p->s[p->pos] != '"') {
		fail(p, "expected a string");
		return NULL;
	}
	p->pos++;
	out = o = malloc(p->len - p->pos + 1);	/* decoding never grows */
	if (!out) {
		perror("json-check");
		exit(1);
	}
	while (p->pos < p->len) {
		unsigned char c = (unsigned char)p->s[p->pos];

		if (c == '"') {
			p->pos++;
			*o = '\0';
			return out;
		}
		if (c < 0x20) {
			fail(p, "control character in string");
			break;
		}
		if (c != '\\') {
			if (!utf8_seq(p, &o))
				break;
			continue;
		}
		p->pos++;
		if (p->pos >= p->len)
			break;
		c = (unsigned char)p->s[p->pos++];
		switch (c) {
		case '"': *o++ = '"'; break;
		case '\\': *o++ = '\\'; break;
		case '/': *o++ = '/'; break;
		case 'b': *o++ = '\b'; break;
		case 'f': *o++ = '\f'; break;
		case 'n': *o++ = '\n'; break;
		case 'r': *o++ = '\r'; break;
		case 't': *o++ = '\t'; break;
		case 'u': {
			unsigned int cp, lo;

			if (!hex4(p, &cp))
				goto bad;
			if (cp >= 0xdc00 && cp <= 0xdfff) {
				fail(p, "lone low surrogate");
				goto bad;
			}
			if (cp >= 0xd800 && cp <= 0xdbff) {
				if (p->pos + 2 > p->len || p->s[p->pos] != '\\' ||
				    p->s[p->pos + 1] != 'u') {
					fail(p, "lone high surrogate");
					goto bad;
				}
				p->pos += 2;
				if (!hex4(p, &lo))
					goto bad;
				if (lo < 0xdc00 || lo > 0xdfff) {
					fail(p, "bad surrogate pair");
					goto bad;
				}
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			}
			put_utf8(&o, cp);
			break;
		}
		default:
			fail(p, "bad escape");
			goto bad;
		}
	}
bad:
	fail(p, "unterminated string");
	free(out);
	return NULL;
}

static bool parse_number(struct parser *p, struct node *n)
{
	size_t start = p->pos;
	const char *s = p->s;

	if (p->pos < p->len && s[p->pos] == '-')
		p->pos++;
	if (p->pos < p->len && s[p->pos] == '0') {
		p->pos++;
	} else if (p->pos < p->len && s[p->pos] >= '1' && s[p->pos] <= '9') {
		while (p->pos < p->len && isdigit((unsigned char)s[p->pos]))
			p->pos++;
	} else {
		return fail(p, "bad number");
	}
	if (p->pos < p->len && s[p->pos] == '.') {
		p->pos++;
		if (p->pos >= p->len || !isdigit((unsigned char)s[p->pos]))
			return fail(p, "bad fraction");
		while (p->pos < p->len && isdigit((unsigned char)s[p->pos]))
			p->pos++;
	}
	if (p->pos < p->len && (s[p->pos] == 'e' || s[p->pos] == 'E')) {
		p->pos++;
		if (p->pos < p->len && (s[p->pos] == '+' || s[p->pos] == '-'))
			p->pos++;
		if (p->pos >= p->len || !isdigit((unsigned char)s[p->pos]))
			return fail(p, "bad exponent");
		while (p->pos < p->len && isdigit((unsigned char)s[p->pos]))
			p->pos++;
	}
	n->text = strndup(s + start, p->pos - start);
	return true;
}

static bool literal(struct parser *p, const char *word)
{
	size_t l = strlen(word);

	if (p->len - p->pos < l || strncmp(p->s + p->pos, word, l))
		return fail(p, "unexpected character");
	p->pos += l;
	return true;
}

static struct node *parse_value(struct parser *p)
{
	struct node *n;
	char c;

	ws(p);
	if (p->pos >= p->len) {
		fail(p, "unexpected end");
		return NULL;
	}
	if (++p->depth > 256) {
		fail(p, "nested too deep");
		return NULL;
	}
	c = p->s[p->pos];
	if (c == '{' || c == '[') {
		bool obj = c == '{';

		n = new_node(obj ? J_OBJ : J_ARR);
		p->pos++;
		ws(p);
		if (p->pos < p->len && p->s[p->pos] == (obj ? '}' : ']')) {
			p->pos++;
			goto done;
		}
		for (;;) {
			struct node *kid;
			char *key = NULL;

			ws(p);
			if (obj) {
				key = parse_string(p);
				if (!key)
					return NULL;
				for (size_t i = 0; i < n->n; i++)
					if (!strcmp(n->kids[i]->key, key)) {
						fail(p, "duplicate key");
						return NULL;
					}
				ws(p);
				if (p->pos >= p->len || p->s[p->pos] != ':') {
					fail(p, "expected ':'");
					return NULL;
				}
				p->pos++;
			}
			kid = parse_value(p);
			if (!kid)
				return NULL;
			kid->key = key;
			add_kid(n, kid);
			ws(p);
			if (p->pos < p->len && p->s[p->pos] == ',') {
				p->pos++;
				continue;
			}
			if (p->pos < p->len && p->s[p->pos] == (obj ? '}' : ']')) {
				p->pos++;
				break;
			}
			fail(p, obj ? "expected ',' or '}'" : "expected ',' or ']'");
			return NULL;
		}
	} else if (c == '"') {
		n = new_node(J_STR);
		n->text = parse_string(p);
		if (!n->text)
			return NULL;
	} else if (c == 't' || c == 'f') {
		n = new_node(J_BOOL);
		n->b = c == 't';
		if (!literal(p, n->b ? "true" : "false"))
			return NULL;
	} else if (c == 'n') {
		n = new_node(J_NULL);
		if (!literal(p, "null"))
			return NULL;
	} else {
		n = new_node(J_NUM);
		if (!parse_number(p, n))
			return NULL;
	}
done:
	p->depth--;
	return n;
}

static void print_node(const struct node *n)
{
	switch (n->kind) {
	case J_NULL: puts("null"); break;
	case J_BOOL: puts(n->b ? "true" : "false"); break;
	case J_NUM:
	case J_STR: puts(n->text); break;
	case J_ARR: puts("[...]"); break;
	case J_OBJ: puts("{...}"); break;
	}
}

/* Walk PATH from n, printing every match; returns the number of matches. */
static int walk(const struct node *n, const char *path)
{
	int found = 0;

	if (!*path) {
		print_node(n);
		return 1;
	}
	if (*path == '#') {
		if ((n->kind != J_ARR && n->kind != J_OBJ) || path[1])
			return 0;
		printf("%zu\n", n->n);
		return 1;
	}
	if (*path == '.') {
		size_t l = strcspn(path + 1, ".[#");

		if (n->kind != J_OBJ)
			return 0;
		for (size_t i = 0; i < n->n; i++)
			if (strlen(n->kids[i]->key) == l && !strncmp(n->kids[i]->key, path + 1, l))
				return walk(n->kids[i], path + 1 + l);
		return 0;
	}
	if (*path == '[') {
		const char *close = strchr(path, ']');
		char *end;
		unsigned long idx;

		if (!close || n->kind != J_ARR)
			return 0;
		if (path[1] == '*' && close == path + 2) {
			for (size_t i = 0; i < n->n; i++)
				found += walk(n->kids[i], close + 1);
			return found;
		}
		idx = strtoul(path + 1, &end, 10);
		if (end != close || idx >= n->n)
			return 0;
		return walk(n->kids[idx], close + 1);
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct parser p = { 0 };
	struct node *root;
	char *buf = NULL;
	size_t cap = 0;
	FILE *f;
	int rc = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: json-check FILE [PATH...]\n");
		return 2;
	}
	f = strcmp(argv[1], "-") ? fopen(argv[1], "rb") : stdin;
	if (!f) {
		fprintf(stderr, "json-check: %s: %s\n", argv[1], strerror(errno));
		return 1;
	}
	for (;;) {
		size_t got;

		if (p.len + 4096 > cap) {
			cap = cap ? 2 * cap : 65536;
			buf = realloc(buf, cap);
			if (!buf) {
				perror("json-check");
				return 1;
			}
		}
		got = fread(buf + p.len, 1, cap - p.len, f);
		if (!got)
			break;
		p.len += got;
	}
	p.s = buf;
	root = parse_value(&p);
	if (root) {
		ws(&p);
		if (p.pos != p.len) {
			fail(&p, "trailing data after the value");
			root = NULL;
		}
	}
	if (!root) {
		fprintf(stderr, "json-check: %s: invalid JSON at byte %zu: %s\n", argv[1], p.pos,
			p.err ? p.err : "?");
		return 1;
	}
	for (int i = 2; i < argc; i++) {
		if (walk(root, argv[i]) == 0) {
			fprintf(stderr, "json-check: %s: no value at %s\n", argv[1], argv[i]);
			rc = 1;
		}
	}
	return rc;
}
