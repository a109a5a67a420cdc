#include "pool/default_registry.h"

#include <new>

#include "pool/zbud.h"
#include "pool/zsmalloc.h"

namespace coldheap::pool {

ZpoolRegistry& DefaultZpoolRegistry() {
  // Static storage, built on first use, never destroyed: pools may be used
  // until the process's last instruction.
  alignas(ZpoolRegistry) static unsigned char storage[sizeof(ZpoolRegistry)];
  static ZpoolRegistry* registry = [] {
    auto* r = new (storage) ZpoolRegistry();
    (void)r->RegisterDriver(&ZsmallocDriver());
    (void)r->RegisterDriver(&ZbudDriver());
    return r;
  }();
  return *registry;
}

}  // namespace coldheap::pool
