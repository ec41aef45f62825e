/*
 * elfnote.h - what a module says about itself in its file, read without
 * loading it.
 *
 * A module declares its isolation preference with LMMS_MODULE_ISOLATION()
 * (lmms-module.h), which puts a NUL-terminated string in the ELF section
 * LMMS_ISOLATION_SECTION. The daemon must decide inproc or process *before*
 * anything of the module runs, so it reads that section from the file by
 * parsing the ELF64 section headers: no dlopen, no mmap, a bounded number of
 * bytes read, and any file that does not parse is "no preference".
 */
#ifndef LMMS_ELFNOTE_H
#define LMMS_ELFNOTE_H

#include <stddef.h>

typedef enum elf_isolation {
	ELF_ISOLATION_NONE = 0, /* no (valid) declaration: the configuration decides */
	ELF_ISOLATION_INPROC,
	ELF_ISOLATION_PROCESS,
} elf_isolation;

/*
 * Copy the contents of section `name` of the ELF64 file at path into buf.
 * Returns the section's size, -ENOENT when the file has no such section,
 * -E2BIG when it is larger than n, -ENOEXEC when the file is not a
 * well-formed ELF64 object in this machine's byte order (or breaks one of the
 * bounds below), or another negative errno from open/read.
 */
int elfnote_read_section(const char *path, const char *name, void *buf, size_t n);

/* The isolation the module file at path declares; NONE on any doubt. */
elf_isolation elfnote_isolation(const char *path);

#endif
