// The zpool interface: a store of compressed objects, each at most a page,
// named by an opaque Handle. It is Linux's `struct zpool_driver` and
// mm/zpool.c in C++:
//
//   Linux                         here
//   struct zpool_driver           ZpoolDriver (type(), Create())
//   zpool_register_driver         ZpoolRegistry::RegisterDriver
//   zpool_unregister_driver       ZpoolRegistry::UnregisterDriver (refused while in use)
//   zpool_get_driver/put_driver   ZpoolRegistry::GetDriver/PutDriver (reference counted)
//   zpool_has_pool                ZpoolRegistry::HasPool
//   zpool_create_pool             ZpoolRegistry::CreatePool -> ZpoolPtr
//   zpool_destroy_pool            ZpoolPtr's destructor (or ZpoolRegistry::DestroyPool)
//   zpool_malloc_support_movable  Zpool::MallocSupportMovable
//   zpool_malloc / zpool_free     Zpool::Malloc / Zpool::Free
//   zpool_shrink                  Zpool::Shrink (evicts through ZpoolOps::evict)
//   zpool_can_sleep_mapped        Zpool::SleepMapped
//   zpool_map/unmap_handle        Zpool::Map / Zpool::Unmap, or the MappedObject guard
//   zpool_get_total_size          Zpool::TotalSize
//
// Where the memory comes from: every byte a pool holds (its data pages, its
// handle tables, the pool object itself) comes from a PageSource, never from
// malloc, because the pool lives inside a malloc implementation. TotalSize()
// is exactly the bytes the pool currently holds from its PageSource.
//
// Threads: Malloc, Free, Map, Unmap, Compact and Shrink may be called from any
// number of threads at once. Handles stay valid while compaction moves the
// objects behind them; a mapped object does not move until it is unmapped.
// Nothing on the Malloc/Free/Map/Unmap path allocates; errors on those paths
// that are the caller's bug (a double free, a foreign handle) abort with a
// message in debug builds, since there is no sane way to continue.
#ifndef COLDHEAP_POOL_ZPOOL_H_
#define COLDHEAP_POOL_ZPOOL_H_

#include <cstddef>
#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "pool/page_source.h"

namespace coldheap::pool {

// The largest object a pool stores: one page.
inline constexpr size_t kMaxObjectSize = kPageSize;

// Names a stored object. Opaque to callers; 0 is never a valid handle.
using Handle = uint64_t;
inline constexpr Handle kNoHandle = 0;

enum class MapMode {
  kReadOnly,   // the caller only reads: unmap writes nothing back
  kWriteOnly,  // the caller overwrites the whole object: old bytes are not read
  kReadWrite,
};

class Zpool;

// What the pool's user gives it (zpool_ops). `evict` is Shrink's writeback:
// it is called with a handle of a stored object, may Map/Unmap that handle
// (and nothing else of the pool), and returns true when the object's bytes
// are saved elsewhere, after which the pool frees the handle itself. Returning
// false keeps the object stored. Without `evict`, Shrink fails.
struct ZpoolOps {
  using EvictFn = bool (*)(void* context, Zpool& pool, Handle handle);
  EvictFn evict = nullptr;
  void* context = nullptr;
};

// One pool instance of a driver.
class Zpool {
 public:
  Zpool() = default;
  Zpool(const Zpool&) = delete;
  Zpool& operator=(const Zpool&) = delete;
  virtual ~Zpool() = default;

  virtual absl::string_view type() const = 0;
  virtual absl::string_view name() const = 0;

  // Whether objects may move after Malloc (and so handles are indirect).
  virtual bool MallocSupportMovable() const = 0;

  // Stores room for `size` bytes (1..kMaxObjectSize); the caller fills it
  // through Map(kWriteOnly). InvalidArgument for a bad size,
  // ResourceExhausted when the PageSource has no more memory.
  virtual absl::StatusOr<Handle> Malloc(size_t size) = 0;

  // Frees a handle from Malloc. The handle must not be mapped.
  virtual void Free(Handle handle) = 0;

  // Evicts least-recently-stored objects through ZpoolOps::evict until
  // `pages` pages of memory went back to the PageSource, or nothing more can
  // be evicted. Returns the number of pages given back; FailedPrecondition
  // when the pool has no evict callback.
  virtual absl::StatusOr<size_t> Shrink(size_t pages) = 0;

  // Whether the caller may block (e.g. do I/O) between Map and Unmap.
  virtual bool SleepMapped() const = 0;

  // A contiguous view of the object's bytes, valid until Unmap. Map/Unmap
  // pairs on one handle must not overlap in time with Free of that handle.
  virtual void* Map(Handle handle, MapMode mode) = 0;
  virtual void Unmap(Handle handle) = 0;

  // Moves objects out of sparsely used storage and gives the memory back.
  // Returns the number of pages given back.
  virtual size_t Compact() = 0;

  // Bytes this pool holds from its PageSource right now.
  virtual uint64_t TotalSize() const = 0;

  // Bytes an object of `size` (1..kMaxObjectSize) takes in this pool: its
  // size class (zsmalloc) or its chunks (zbud). A recompression frees memory
  // only when it lowers this, as zram's recompression rule says.
  virtual size_t StoredSize(size_t size) const = 0;
};

// Maps a handle for the lifetime of the guard.
class MappedObject {
 public:
  MappedObject(Zpool& pool, Handle handle, MapMode mode)
      : pool_(pool), handle_(handle), data_(pool.Map(handle, mode)) {}
  MappedObject(const MappedObject&) = delete;
  MappedObject& operator=(const MappedObject&) = delete;
  ~MappedObject() { pool_.Unmap(handle_); }

  void* data() const { return data_; }

 private:
  Zpool& pool_;
  Handle handle_;
  void* data_;
};

// A kind of pool (zsmalloc, zbud, ...). Drivers are long-lived objects owned
// by whoever registers them.
class ZpoolDriver {
 public:
  virtual ~ZpoolDriver() = default;
  virtual absl::string_view type() const = 0;

  // Builds a pool whose memory, including the Zpool object itself, comes
  // from `pages`. Destroy it with DestroyPool(), never with delete.
  virtual absl::StatusOr<Zpool*> Create(absl::string_view name,
                                        const ZpoolOps& ops,
                                        PageSource& pages) = 0;
  // Destroys a pool this driver created and gives all its memory back.
  virtual void Destroy(Zpool* pool) = 0;
};

class ZpoolRegistry;

// Owns a pool and a reference to its driver: destroying the pool puts the
// driver, so a driver cannot be unregistered under a live pool.
class ZpoolDeleter {
 public:
  ZpoolDeleter() = default;
  ZpoolDeleter(ZpoolRegistry* registry, ZpoolDriver* driver)
      : registry_(registry), driver_(driver) {}
  void operator()(Zpool* pool) const;

 private:
  ZpoolRegistry* registry_ = nullptr;
  ZpoolDriver* driver_ = nullptr;
};
using ZpoolPtr = std::unique_ptr<Zpool, ZpoolDeleter>;

// Drivers by name, with reference counts. Holds at most kMaxDrivers drivers
// in a fixed table, so it never allocates.
class ZpoolRegistry {
 public:
  static constexpr int kMaxDrivers = 8;

  ZpoolRegistry() = default;
  ZpoolRegistry(const ZpoolRegistry&) = delete;
  ZpoolRegistry& operator=(const ZpoolRegistry&) = delete;

  // AlreadyExists if a driver of that type is registered;
  // ResourceExhausted when the table is full.
  absl::Status RegisterDriver(ZpoolDriver* driver);
  // FailedPrecondition while the driver has references (live pools or
  // GetDriver without PutDriver); NotFound if it is not registered.
  absl::Status UnregisterDriver(ZpoolDriver* driver);

  // Takes a reference; NotFound for an unknown type.
  absl::StatusOr<ZpoolDriver*> GetDriver(absl::string_view type);
  void PutDriver(ZpoolDriver* driver);
  // References held on a registered driver; -1 if it is not registered.
  int RefCount(const ZpoolDriver* driver) const;

  bool HasPool(absl::string_view type) const;

  // A pool of driver `type`, whose memory comes from `pages` (the OS by
  // default). NotFound for an unknown type (the message lists the known ones).
  absl::StatusOr<ZpoolPtr> CreatePool(absl::string_view type,
                                      absl::string_view name,
                                      const ZpoolOps& ops,
                                      PageSource& pages = OsPageSource());
  void DestroyPool(ZpoolPtr pool) { pool.reset(); }

 private:
  struct Entry {
    ZpoolDriver* driver = nullptr;
    int refcount = 0;
  };
  Entry* Find(absl::string_view type);
  const Entry* Find(absl::string_view type) const;

  mutable absl::Mutex mu_;
  Entry entries_[kMaxDrivers] ABSL_GUARDED_BY(mu_);
};

}  // namespace coldheap::pool

#endif  // COLDHEAP_POOL_ZPOOL_H_
