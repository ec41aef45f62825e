/*
 * elfnote.c - read one section of an ELF64 file by its section headers.
 *
 * The file is a module nobody has vouched for yet (it may be truncated,
 * half-written by an install, or hostile), so every offset and size read
 * from it is checked against the file size before it is used, the amounts
 * read are capped, and nothing is mapped. Only ELF64 in the host's byte
 * order is understood: anything else cannot be dlopened by this daemon
 * either.
 */
#include "elfnote.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <lmms/lmms-module.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Bounds far above any real module (tens of sections, a few hundred bytes
 * of names) and low enough that a hostile header costs little. */
#define ELF_MAX_SECTIONS 4096u
#define ELF_MAX_SHSTRTAB (64u * 1024u)
#define ISOLATION_MAX 64u

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define ELF_HOST_DATA ELFDATA2LSB
#else
#define ELF_HOST_DATA ELFDATA2MSB
#endif

/* Exactly n bytes at off, which must lie inside the file. */
static int read_at(int fd, uint64_t file_size, uint64_t off, void *buf, size_t n)
{
	char *p = buf;

	if (off > file_size || n > file_size - off)
		return -ENOEXEC;
	while (n > 0) {
		ssize_t r = pread(fd, p, n, (off_t)off);

		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0)
			return -errno;
		if (r == 0)
			return -ENOEXEC; /* shrank under us */
		p += r;
		off += (uint64_t)r;
		n -= (size_t)r;
	}
	return 0;
}

static int check_header(const Elf64_Ehdr *eh)
{
	if (memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 || eh->e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh->e_ident[EI_DATA] != ELF_HOST_DATA || eh->e_ident[EI_VERSION] != EV_CURRENT)
		return -ENOEXEC;
	if (eh->e_shoff == 0 && eh->e_shnum == 0)
		return -ENOENT; /* no section table at all: nothing declared */
	/* e_shnum 0 with a table means more than 0xff00 sections (the count
	 * moves to section 0), far past the bound: refused like it. */
	if (eh->e_shentsize != sizeof(Elf64_Shdr) || eh->e_shnum == 0 ||
	    eh->e_shnum > ELF_MAX_SECTIONS || eh->e_shstrndx == SHN_UNDEF ||
	    eh->e_shstrndx >= eh->e_shnum)
		return -ENOEXEC;
	return 0;
}

/* Does the name at off in the string table equal name (NUL included)? */
static bool name_is(const char *names, uint64_t size, uint32_t off, const char *name)
{
	size_t len = strlen(name) + 1;

	return off < size && len <= size - off && memcmp(names + off, name, len) == 0;
}

static int find_section(int fd, uint64_t file_size, const Elf64_Ehdr *eh, const char *name,
			void *buf, size_t n)
{
	Elf64_Shdr *sh = NULL;
	const Elf64_Shdr *strtab, *hit = NULL;
	char *names = NULL;
	int r;

	sh = calloc(eh->e_shnum, sizeof(*sh));
	if (!sh)
		return -ENOMEM;
	r = read_at(fd, file_size, eh->e_shoff, sh, (size_t)eh->e_shnum * sizeof(*sh));
	if (r < 0)
		goto out;
	strtab = &sh[eh->e_shstrndx];
	if (strtab->sh_type == SHT_NOBITS || strtab->sh_size == 0 ||
	    strtab->sh_size > ELF_MAX_SHSTRTAB) {
		r = -ENOEXEC;
		goto out;
	}
	names = malloc(strtab->sh_size);
	if (!names) {
		r = -ENOMEM;
		goto out;
	}
	r = read_at(fd, file_size, strtab->sh_offset, names, strtab->sh_size);
	if (r < 0)
		goto out;
	for (uint32_t i = 1; i < eh->e_shnum && !hit; i++)
		if (name_is(names, strtab->sh_size, sh[i].sh_name, name))
			hit = &sh[i];
	if (!hit) {
		r = -ENOENT;
	} else if (hit->sh_type == SHT_NOBITS) {
		r = -ENOEXEC; /* a string that occupies no file bytes */
	} else if (hit->sh_size > n || hit->sh_size > INT32_MAX) {
		r = -E2BIG;
	} else {
		r = read_at(fd, file_size, hit->sh_offset, buf, hit->sh_size);
		if (r == 0)
			r = (int)hit->sh_size;
	}
out:
	free(names);
	free(sh);
	return r;
}

int elfnote_read_section(const char *path, const char *name, void *buf, size_t n)
{
	Elf64_Ehdr eh;
	struct stat st;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		r = -ENOEXEC;
		goto out;
	}
	r = read_at(fd, (uint64_t)st.st_size, 0, &eh, sizeof(eh));
	if (r == 0)
		r = check_header(&eh);
	if (r == 0)
		r = find_section(fd, (uint64_t)st.st_size, &eh, name, buf, n);
out:
	close(fd);
	return r;
}

static elf_isolation isolation_from(const char *s, size_t n)
{
	if (n == 6 && memcmp(s, "inproc", 6) == 0)
		return ELF_ISOLATION_INPROC;
	if (n == 7 && memcmp(s, "process", 7) == 0)
		return ELF_ISOLATION_PROCESS;
	return ELF_ISOLATION_NONE;
}

/*
 * The linker concatenates the section of every object that declares one, so
 * the contents are one or more NUL-terminated strings (alignment may add NUL
 * padding). They must all name the same valid mode; a contradiction or an
 * unknown word is no preference rather than a guess.
 */
elf_isolation elfnote_isolation(const char *path)
{
	char buf[ISOLATION_MAX];
	elf_isolation mode = ELF_ISOLATION_NONE;
	size_t pos = 0, len;
	int n;

	n = elfnote_read_section(path, LMMS_ISOLATION_SECTION, buf, sizeof(buf));
	if (n <= 0 || buf[n - 1] != '\0')
		return ELF_ISOLATION_NONE;
	while (pos < (size_t)n) {
		elf_isolation m;

		len = strlen(buf + pos);
		if (len == 0) {
			pos++;
			continue;
		}
		m = isolation_from(buf + pos, len);
		if (m == ELF_ISOLATION_NONE || (mode != ELF_ISOLATION_NONE && m != mode))
			return ELF_ISOLATION_NONE;
		mode = m;
		pos += len + 1;
	}
	return mode;
}
