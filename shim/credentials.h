// The set*id() family, interposed (credentials.cc) so that the shim's
// threads follow the program's credential changes: thread.h
// (CredentialRelay) says why they must.
#ifndef COLDHEAP_SHIM_CREDENTIALS_H_
#define COLDHEAP_SHIM_CREDENTIALS_H_

namespace coldheap::shim {

// Around each call, on the calling thread (runtime.cc). Begin gives every
// shim thread the caller's capabilities and securebits and keeps other
// rounds and fork(2) out until End.
void BeginCredentialChange();
void EndCredentialChange();

}  // namespace coldheap::shim

#endif  // COLDHEAP_SHIM_CREDENTIALS_H_
