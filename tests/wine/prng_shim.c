/*
 * bcryptprimitives.dll for Wine 8, which lacks it: Rust's standard library (inside deno.exe) calls
 * ProcessPrng for random bytes. Forward to advapi32's RtlGenRandom (SystemFunction036), which takes a
 * ULONG length, so larger requests are served in chunks.
 */
#include <windows.h>

BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);

__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len) {
  while (len > 0) {
    ULONG chunk = len > 0x7fffffff ? 0x7fffffff : (ULONG)len;
    if (!SystemFunction036(data, chunk)) return FALSE;
    data += chunk;
    len -= chunk;
  }
  return TRUE;
}
