// Kernel uapi definitions that Debian 12's headers (Linux 6.1) lack.
//
// coldheap is built against Debian 12's linux-libc-dev but runs on newer
// kernels, and asks the running kernel at run time what it supports (the
// UFFDIO_API handshake, a PAGEMAP_SCAN probe). Everything it needs from newer
// uapi headers is defined here, once, copied from the kernel's
// include/uapi/linux/userfaultfd.h and include/uapi/linux/fs.h (Linux 6.7+;
// numbers checked against torvalds/linux). Each definition is guarded so that
// newer system headers win; the static_asserts at the end check that the
// system headers, where they define a thing, agree with what the code here
// expects.
//
// Include this instead of <linux/userfaultfd.h> and <linux/fs.h>.
#ifndef COLDHEAP_SHIM_UFFD_COMPAT_H_
#define COLDHEAP_SHIM_UFFD_COMPAT_H_

#include <linux/fs.h>
#include <linux/types.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>

// ---------------------------------------------------------------------------
// userfaultfd(2) flags and /dev/userfaultfd (Linux 5.11 / 6.1).

#ifndef UFFD_USER_MODE_ONLY
#define UFFD_USER_MODE_ONLY 1
#endif

#ifndef USERFAULTFD_IOC
#define USERFAULTFD_IOC 0xAA
#endif
#ifndef USERFAULTFD_IOC_NEW
#define USERFAULTFD_IOC_NEW _IO(USERFAULTFD_IOC, 0x00)
#endif

// ---------------------------------------------------------------------------
// UFFDIO_API feature bits.

#ifndef UFFD_FEATURE_MINOR_HUGETLBFS
#define UFFD_FEATURE_MINOR_HUGETLBFS (1 << 9)
#endif
#ifndef UFFD_FEATURE_MINOR_SHMEM
#define UFFD_FEATURE_MINOR_SHMEM (1 << 10)
#endif
#ifndef UFFD_FEATURE_EXACT_ADDRESS
#define UFFD_FEATURE_EXACT_ADDRESS (1 << 11)
#endif
#ifndef UFFD_FEATURE_WP_HUGETLBFS_SHMEM
#define UFFD_FEATURE_WP_HUGETLBFS_SHMEM (1 << 12)
#endif
// Write protection applies to unpopulated (pte_none) anonymous pages too:
// UFFDIO_WRITEPROTECT installs a marker there (Linux 6.4).
#ifndef UFFD_FEATURE_WP_UNPOPULATED
#define UFFD_FEATURE_WP_UNPOPULATED (1 << 13)
#endif
#ifndef UFFD_FEATURE_POISON
#define UFFD_FEATURE_POISON (1 << 14)
#endif
// Write faults on write-protected pages are resolved by the kernel (no
// message); PAGEMAP_SCAN then reports which pages were written. Implies
// WP_UNPOPULATED (Linux 6.7).
#ifndef UFFD_FEATURE_WP_ASYNC
#define UFFD_FEATURE_WP_ASYNC (1 << 15)
#endif
// UFFDIO_MOVE is available (Linux 6.8).
#ifndef UFFD_FEATURE_MOVE
#define UFFD_FEATURE_MOVE (1 << 16)
#endif

// ---------------------------------------------------------------------------
// ioctl numbers and their argument structs.

#ifndef UFFDIO_REGISTER_MODE_MINOR
#define UFFDIO_REGISTER_MODE_MINOR ((__u64)1 << 2)
#endif

#ifndef UFFDIO_COPY_MODE_WP
#define UFFDIO_COPY_MODE_WP ((__u64)1 << 1)
#endif

#ifndef _UFFDIO_WRITEPROTECT
#define _UFFDIO_WRITEPROTECT (0x06)
#endif
#ifndef UFFDIO_WRITEPROTECT
struct uffdio_writeprotect {
  struct uffdio_range range;
#define UFFDIO_WRITEPROTECT_MODE_WP ((__u64)1 << 0)
#define UFFDIO_WRITEPROTECT_MODE_DONTWAKE ((__u64)1 << 1)
  __u64 mode;
};
#define UFFDIO_WRITEPROTECT \
  _IOWR(UFFDIO, _UFFDIO_WRITEPROTECT, struct uffdio_writeprotect)
#endif

#ifndef _UFFDIO_MOVE
#define _UFFDIO_MOVE (0x05)
#endif
#ifndef UFFDIO_MOVE
struct uffdio_move {
  __u64 dst;
  __u64 src;
  __u64 len;
#define UFFDIO_MOVE_MODE_DONTWAKE ((__u64)1 << 0)
#define UFFDIO_MOVE_MODE_ALLOW_SRC_HOLES ((__u64)1 << 1)
  __u64 mode;
  // Written by the kernel: bytes moved, or -errno.
  __s64 move;
};
#define UFFDIO_MOVE _IOWR(UFFDIO, _UFFDIO_MOVE, struct uffdio_move)
#endif

#ifndef _UFFDIO_POISON
#define _UFFDIO_POISON (0x08)
#endif

// ---------------------------------------------------------------------------
// PAGEMAP_SCAN: an ioctl on /proc/<pid>/pagemap (Linux 6.7).

#ifndef PAGEMAP_SCAN
// Categories: masks in pm_scan_arg, reported in page_region.categories.
#define PAGE_IS_WPALLOWED (1 << 0)
#define PAGE_IS_WRITTEN (1 << 1)
#define PAGE_IS_FILE (1 << 2)
#define PAGE_IS_PRESENT (1 << 3)
#define PAGE_IS_SWAPPED (1 << 4)
#define PAGE_IS_PFNZERO (1 << 5)
#define PAGE_IS_HUGE (1 << 6)
#define PAGE_IS_SOFT_DIRTY (1 << 7)

// A run of pages [start, end) with the same reported categories.
struct page_region {
  __u64 start;
  __u64 end;
  __u64 categories;
};

// Write-protect the pages matched (needs a range registered for WP with
// UFFD_FEATURE_WP_ASYNC).
#define PM_SCAN_WP_MATCHING (1 << 0)
// Fail with EPERM if the range holds a page not under async write protection.
#define PM_SCAN_CHECK_WPASYNC (1 << 1)

struct pm_scan_arg {
  __u64 size;  // sizeof(struct pm_scan_arg)
  __u64 flags;
  __u64 start;
  __u64 end;
  __u64 walk_end;  // written by the kernel: where the walk stopped
  __u64 vec;
  __u64 vec_len;
  __u64 max_pages;  // 0: no limit
  __u64 category_inverted;
  __u64 category_mask;
  __u64 category_anyof_mask;
  __u64 return_mask;
};

#define PAGEMAP_SCAN _IOWR('f', 16, struct pm_scan_arg)
#endif  // PAGEMAP_SCAN

// Newer headers that have PAGEMAP_SCAN but predate these categories.
#ifndef PAGE_IS_HUGE
#define PAGE_IS_HUGE (1 << 6)
#endif
#ifndef PAGE_IS_SOFT_DIRTY
#define PAGE_IS_SOFT_DIRTY (1 << 7)
#endif

// ---------------------------------------------------------------------------
// The ABI is fixed; these hold whichever header supplied the definitions.

static_assert(UFFD_FEATURE_WP_UNPOPULATED == (1 << 13), "uapi mismatch");
static_assert(UFFD_FEATURE_WP_ASYNC == (1 << 15), "uapi mismatch");
static_assert(UFFD_FEATURE_MOVE == (1 << 16), "uapi mismatch");
static_assert(UFFD_FEATURE_EXACT_ADDRESS == (1 << 11), "uapi mismatch");
static_assert(UFFD_FEATURE_WP_HUGETLBFS_SHMEM == (1 << 12), "uapi mismatch");
static_assert(UFFDIO_MOVE == 0xc028aa05, "uapi mismatch");
static_assert(UFFDIO_WRITEPROTECT == 0xc018aa06, "uapi mismatch");
static_assert(USERFAULTFD_IOC_NEW == 0xaa00, "uapi mismatch");
static_assert(PAGEMAP_SCAN == 0xc0606610, "uapi mismatch");
static_assert(sizeof(struct uffdio_move) == 40, "uapi mismatch");
static_assert(sizeof(struct pm_scan_arg) == 96, "uapi mismatch");
static_assert(sizeof(struct page_region) == 24, "uapi mismatch");
static_assert(sizeof(struct uffd_msg) == 32, "uapi mismatch");

#endif  // COLDHEAP_SHIM_UFFD_COMPAT_H_
