// SPDX-License-Identifier: GPL-2.0-only
/*
 * Two independent views of physical memory, to check libkheap against:
 *
 * - the MMU's: /proc/self/pagemap gives, per virtual page, the page frame
 *   that the page tables point at.  Readers without CAP_SYS_ADMIN see
 *   frame 0 for present pages; we report that as "hidden", not as a
 *   mismatch.
 * - the RAM's: /proc/kcore is an ELF image of the kernel's address space.
 *   Its PT_LOAD segments for the direct map carry the physical address in
 *   p_paddr, so a physical address can be read without going through our
 *   own mapping at all.  It needs root (CAP_SYS_RAWIO), covers only System
 *   RAM (not memmap=-reserved ranges) and is closed under lockdown.
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kheapctl.h"

#define PM_PRESENT	(1ULL << 63)
#define PM_SWAPPED	(1ULL << 62)
#define PM_PFN_MASK	((1ULL << 55) - 1)

int pagemap_open(void)
{
	int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);

	return fd < 0 ? -errno : fd;
}

int pagemap_phys(int fd, uintptr_t vaddr, uint64_t *phys)
{
	long psz = sysconf(_SC_PAGESIZE);
	uint64_t entry;
	ssize_t n;

	n = pread(fd, &entry, sizeof(entry), (off_t)(vaddr / (uintptr_t)psz) * 8);
	if (n != sizeof(entry))
		return n < 0 ? -errno : -EIO;
	if (!(entry & PM_PRESENT) || (entry & PM_SWAPPED))
		return -ENOENT;
	if ((entry & PM_PFN_MASK) == 0)
		return PAGEMAP_HIDDEN;
	*phys = (entry & PM_PFN_MASK) * (uint64_t)psz + (vaddr % (uintptr_t)psz);
	return 0;
}

struct kcore {
	int fd;
	size_t nseg;
	Elf64_Phdr seg[];
};

struct kcore *kcore_open(int *error)
{
	Elf64_Ehdr eh;
	struct kcore *kc;
	size_t n = 0;
	int fd = open("/proc/kcore", O_RDONLY | O_CLOEXEC);

	if (fd < 0) {
		*error = -errno;
		return NULL;
	}
	if (pread(fd, &eh, sizeof(eh), 0) != sizeof(eh) ||
	    memcmp(eh.e_ident, ELFMAG, SELFMAG) || eh.e_ident[EI_CLASS] != ELFCLASS64 ||
	    eh.e_phentsize != sizeof(Elf64_Phdr)) {
		close(fd);
		*error = -ENOEXEC;
		return NULL;
	}
	kc = calloc(1, sizeof(*kc) + eh.e_phnum * sizeof(Elf64_Phdr));
	if (!kc) {
		close(fd);
		*error = -ENOMEM;
		return NULL;
	}
	for (unsigned int i = 0; i < eh.e_phnum; i++) {
		Elf64_Phdr ph;

		if (pread(fd, &ph, sizeof(ph), (off_t)(eh.e_phoff + i * sizeof(ph))) != sizeof(ph))
			break;
		/* Direct-map RAM segments know their physical address. */
		if (ph.p_type == PT_LOAD && ph.p_paddr != (Elf64_Addr)-1 && ph.p_memsz)
			kc->seg[n++] = ph;
	}
	kc->fd = fd;
	kc->nseg = n;
	return kc;
}

int kcore_read(struct kcore *kc, uint64_t phys, void *buf, size_t len)
{
	for (size_t i = 0; i < kc->nseg; i++) {
		const Elf64_Phdr *ph = &kc->seg[i];
		ssize_t n;

		if (phys < ph->p_paddr || phys - ph->p_paddr >= ph->p_memsz ||
		    len > ph->p_memsz - (phys - ph->p_paddr))
			continue;
		n = pread(kc->fd, buf, len, (off_t)(ph->p_offset + (phys - ph->p_paddr)));
		if (n < 0)
			return -errno;
		return (size_t)n == len ? 0 : -EIO;
	}
	return -ERANGE;		/* not System RAM that kcore shows */
}

void kcore_close(struct kcore *kc)
{
	if (kc) {
		close(kc->fd);
		free(kc);
	}
}
