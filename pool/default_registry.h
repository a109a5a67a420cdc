// The process-wide zpool registry with the built-in drivers.
#ifndef COLDHEAP_POOL_DEFAULT_REGISTRY_H_
#define COLDHEAP_POOL_DEFAULT_REGISTRY_H_

#include "pool/zpool.h"

namespace coldheap::pool {

// The registry with "zsmalloc" (the default) and "zbud" registered on first
// use. Never destroyed.
ZpoolRegistry& DefaultZpoolRegistry();

inline constexpr absl::string_view kDefaultZpoolType = "zsmalloc";

}  // namespace coldheap::pool

#endif  // COLDHEAP_POOL_DEFAULT_REGISTRY_H_
