#include "pool/zpool.h"

#include <string>

#include "absl/strings/str_cat.h"

namespace coldheap::pool {

void ZpoolDeleter::operator()(Zpool* pool) const {
  if (pool == nullptr) return;
  driver_->Destroy(pool);
  registry_->PutDriver(driver_);
}

ZpoolRegistry::Entry* ZpoolRegistry::Find(absl::string_view type) {
  for (Entry& e : entries_) {
    if (e.driver != nullptr && e.driver->type() == type) return &e;
  }
  return nullptr;
}

const ZpoolRegistry::Entry* ZpoolRegistry::Find(absl::string_view type) const {
  return const_cast<ZpoolRegistry*>(this)->Find(type);
}

absl::Status ZpoolRegistry::RegisterDriver(ZpoolDriver* driver) {
  absl::MutexLock lock(&mu_);
  if (Find(driver->type()) != nullptr) {
    return absl::AlreadyExistsError(
        absl::StrCat("zpool driver '", driver->type(), "' is already registered"));
  }
  for (Entry& e : entries_) {
    if (e.driver == nullptr) {
      e = Entry{driver, 0};
      return absl::OkStatus();
    }
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      "zpool registry is full (", kMaxDrivers, " drivers)"));
}

absl::Status ZpoolRegistry::UnregisterDriver(ZpoolDriver* driver) {
  absl::MutexLock lock(&mu_);
  Entry* e = Find(driver->type());
  if (e == nullptr || e->driver != driver) {
    return absl::NotFoundError(
        absl::StrCat("zpool driver '", driver->type(), "' is not registered"));
  }
  if (e->refcount > 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("zpool driver '", driver->type(), "' is in use (",
                     e->refcount, " references)"));
  }
  *e = Entry{};
  return absl::OkStatus();
}

absl::StatusOr<ZpoolDriver*> ZpoolRegistry::GetDriver(absl::string_view type) {
  absl::MutexLock lock(&mu_);
  Entry* e = Find(type);
  if (e == nullptr) {
    std::string known;
    for (const Entry& k : entries_) {
      if (k.driver == nullptr) continue;
      absl::StrAppend(&known, known.empty() ? "" : ", ", k.driver->type());
    }
    return absl::NotFoundError(absl::StrCat("unknown zpool type '", type,
                                            "' (known: ", known, ")"));
  }
  ++e->refcount;
  return e->driver;
}

void ZpoolRegistry::PutDriver(ZpoolDriver* driver) {
  absl::MutexLock lock(&mu_);
  Entry* e = Find(driver->type());
  if (e != nullptr && e->refcount > 0) --e->refcount;
}

int ZpoolRegistry::RefCount(const ZpoolDriver* driver) const {
  absl::MutexLock lock(&mu_);
  const Entry* e = Find(driver->type());
  return e != nullptr && e->driver == driver ? e->refcount : -1;
}

bool ZpoolRegistry::HasPool(absl::string_view type) const {
  absl::MutexLock lock(&mu_);
  return Find(type) != nullptr;
}

absl::StatusOr<ZpoolPtr> ZpoolRegistry::CreatePool(absl::string_view type,
                                                   absl::string_view name,
                                                   const ZpoolOps& ops,
                                                   PageSource& pages) {
  absl::StatusOr<ZpoolDriver*> driver = GetDriver(type);
  if (!driver.ok()) return driver.status();
  absl::StatusOr<Zpool*> pool = (*driver)->Create(name, ops, pages);
  if (!pool.ok()) {
    PutDriver(*driver);
    return pool.status();
  }
  return ZpoolPtr(*pool, ZpoolDeleter(this, *driver));
}

}  // namespace coldheap::pool
