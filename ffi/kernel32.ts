/**
 * The Win32 symbols the Windows engine calls: kernel32 (named pipes, overlapped I/O, completion
 * ports), advapi32 (tokens, security descriptors) and ntdll (NTSTATUS → Win32 error), with the
 * constants they take. One typed table per DLL, C names as keys, each parameter's C type beside it.
 *
 * Nothing is opened at import: {@linkcode kernel32}, {@linkcode advapi32} and {@linkcode ntdll}
 * open their DLL on first use, so importing this module on Linux costs nothing.
 *
 * Types: `HANDLE` and other pointer-sized values travel as `usize` (a `number` for real handles;
 * `INVALID_HANDLE_VALUE` comes back as a `bigint`), out-parameters and structs as `buffer`.
 *
 * @module
 */

const kernel32Symbols = {
  CreateNamedPipeW: {
    parameters: [
      "buffer", // LPCWSTR lpName
      "u32", // DWORD dwOpenMode
      "u32", // DWORD dwPipeMode
      "u32", // DWORD nMaxInstances
      "u32", // DWORD nOutBufferSize
      "u32", // DWORD nInBufferSize
      "u32", // DWORD nDefaultTimeOut
      "buffer", // LPSECURITY_ATTRIBUTES lpSecurityAttributes
    ],
    result: "usize", // HANDLE
  },
  ConnectNamedPipe: {
    parameters: [
      "usize", // HANDLE hNamedPipe
      "buffer", // LPOVERLAPPED lpOverlapped
    ],
    result: "i32", // BOOL
  },
  DisconnectNamedPipe: {
    parameters: ["usize"], // HANDLE hNamedPipe
    result: "i32", // BOOL
  },
  CreateFileW: {
    parameters: [
      "buffer", // LPCWSTR lpFileName
      "u32", // DWORD dwDesiredAccess
      "u32", // DWORD dwShareMode
      "buffer", // LPSECURITY_ATTRIBUTES lpSecurityAttributes
      "u32", // DWORD dwCreationDisposition
      "u32", // DWORD dwFlagsAndAttributes
      "usize", // HANDLE hTemplateFile
    ],
    result: "usize", // HANDLE
  },
  ReadFile: {
    parameters: [
      "usize", // HANDLE hFile
      "buffer", // LPVOID lpBuffer
      "u32", // DWORD nNumberOfBytesToRead
      "buffer", // LPDWORD lpNumberOfBytesRead (NULL when overlapped)
      "buffer", // LPOVERLAPPED lpOverlapped
    ],
    result: "i32", // BOOL
  },
  WriteFile: {
    parameters: [
      "usize", // HANDLE hFile
      "buffer", // LPCVOID lpBuffer
      "u32", // DWORD nNumberOfBytesToWrite
      "buffer", // LPDWORD lpNumberOfBytesWritten (NULL when overlapped)
      "buffer", // LPOVERLAPPED lpOverlapped
    ],
    result: "i32", // BOOL
  },
  PeekNamedPipe: {
    parameters: [
      "usize", // HANDLE hNamedPipe
      "buffer", // LPVOID lpBuffer
      "u32", // DWORD nBufferSize
      "buffer", // LPDWORD lpBytesRead
      "buffer", // LPDWORD lpTotalBytesAvail
      "buffer", // LPDWORD lpBytesLeftThisMessage
    ],
    result: "i32", // BOOL
  },
  CloseHandle: {
    parameters: ["usize"], // HANDLE hObject
    result: "i32", // BOOL
  },
  GetLastError: {
    parameters: [],
    result: "u32", // DWORD
  },
  CreateIoCompletionPort: {
    parameters: [
      "usize", // HANDLE FileHandle
      "usize", // HANDLE ExistingCompletionPort
      "usize", // ULONG_PTR CompletionKey
      "u32", // DWORD NumberOfConcurrentThreads
    ],
    result: "usize", // HANDLE
  },
  GetQueuedCompletionStatusEx: {
    parameters: [
      "usize", // HANDLE CompletionPort
      "buffer", // LPOVERLAPPED_ENTRY lpCompletionPortEntries
      "u32", // ULONG ulCount
      "buffer", // PULONG ulNumEntriesRemoved
      "u32", // DWORD dwMilliseconds
      "i32", // BOOL fAlertable
    ],
    result: "i32", // BOOL
  },
  /** The same function run on Deno's blocking pool: the engine's one wait that may block. */
  GetQueuedCompletionStatusExBlocking: {
    name: "GetQueuedCompletionStatusEx",
    parameters: [
      "usize", // HANDLE CompletionPort
      "buffer", // LPOVERLAPPED_ENTRY lpCompletionPortEntries
      "u32", // ULONG ulCount
      "buffer", // PULONG ulNumEntriesRemoved
      "u32", // DWORD dwMilliseconds
      "i32", // BOOL fAlertable
    ],
    result: "i32", // BOOL
    nonblocking: true,
  },
  PostQueuedCompletionStatus: {
    parameters: [
      "usize", // HANDLE CompletionPort
      "u32", // DWORD dwNumberOfBytesTransferred
      "usize", // ULONG_PTR dwCompletionKey
      "usize", // LPOVERLAPPED lpOverlapped
    ],
    result: "i32", // BOOL
  },
  SetFileCompletionNotificationModes: {
    parameters: [
      "usize", // HANDLE FileHandle
      "u8", // UCHAR Flags
    ],
    result: "i32", // BOOL
  },
  CancelIoEx: {
    parameters: [
      "usize", // HANDLE hFile
      "buffer", // LPOVERLAPPED lpOverlapped (NULL: every operation on the handle)
    ],
    result: "i32", // BOOL
  },
  GetNamedPipeClientProcessId: {
    parameters: [
      "usize", // HANDLE Pipe
      "buffer", // PULONG ClientProcessId
    ],
    result: "i32", // BOOL
  },
  GetNamedPipeServerProcessId: {
    parameters: [
      "usize", // HANDLE Pipe
      "buffer", // PULONG ServerProcessId
    ],
    result: "i32", // BOOL
  },
  /** The pipe's type (flags: PIPE_SERVER_END, PIPE_TYPE_MESSAGE), buffers and instance limit. */
  GetNamedPipeInfo: {
    parameters: [
      "usize", // HANDLE hNamedPipe
      "buffer", // LPDWORD lpFlags
      "buffer", // LPDWORD lpOutBufferSize
      "buffer", // LPDWORD lpInBufferSize
      "buffer", // LPDWORD lpMaxInstances
    ],
    result: "i32", // BOOL
  },
  SetNamedPipeHandleState: {
    parameters: [
      "usize", // HANDLE hNamedPipe
      "buffer", // LPDWORD lpMode
      "buffer", // LPDWORD lpMaxCollectionCount
      "buffer", // LPDWORD lpCollectDataTimeout
    ],
    result: "i32", // BOOL
  },
  WaitNamedPipeW: {
    parameters: [
      "buffer", // LPCWSTR lpNamedPipeName
      "u32", // DWORD nTimeOut
    ],
    result: "i32", // BOOL
  },
  GetCurrentProcess: {
    parameters: [],
    result: "usize", // HANDLE (the pseudo-handle -1)
  },
  GetProcessHandleCount: {
    parameters: [
      "usize", // HANDLE hProcess
      "buffer", // PDWORD pdwHandleCount
    ],
    result: "i32", // BOOL
  },
  GetCurrentThread: {
    parameters: [],
    result: "usize", // HANDLE (the pseudo-handle -2)
  },
  /** Windows Vista. */
  GetNamedPipeClientSessionId: {
    parameters: [
      "usize", // HANDLE Pipe
      "buffer", // PULONG ClientSessionId
    ],
    result: "i32", // BOOL
  },
  /** Windows Vista. */
  GetNamedPipeServerSessionId: {
    parameters: [
      "usize", // HANDLE Pipe
      "buffer", // PULONG ServerSessionId
    ],
    result: "i32", // BOOL
  },
  OpenProcess: {
    parameters: [
      "u32", // DWORD dwDesiredAccess
      "i32", // BOOL bInheritHandle
      "u32", // DWORD dwProcessId
    ],
    result: "usize", // HANDLE (NULL on failure)
  },
  TerminateProcess: {
    parameters: [
      "usize", // HANDLE hProcess
      "u32", // UINT uExitCode
    ],
    result: "i32", // BOOL
  },
  LocalFree: {
    parameters: ["usize"], // HLOCAL hMem
    result: "usize", // HLOCAL
  },
} as const satisfies Deno.ForeignLibraryInterface;

const advapi32Symbols = {
  OpenProcessToken: {
    parameters: [
      "usize", // HANDLE ProcessHandle
      "u32", // DWORD DesiredAccess
      "buffer", // PHANDLE TokenHandle
    ],
    result: "i32", // BOOL
  },
  GetTokenInformation: {
    parameters: [
      "usize", // HANDLE TokenHandle
      "u32", // TOKEN_INFORMATION_CLASS TokenInformationClass
      "buffer", // LPVOID TokenInformation
      "u32", // DWORD TokenInformationLength
      "buffer", // PDWORD ReturnLength
    ],
    result: "i32", // BOOL
  },
  ConvertSidToStringSidW: {
    parameters: [
      "usize", // PSID Sid
      "buffer", // LPWSTR *StringSid
    ],
    result: "i32", // BOOL
  },
  /** Windows XP (advapi32). */
  ImpersonateNamedPipeClient: {
    parameters: ["usize"], // HANDLE hNamedPipe
    result: "i32", // BOOL
  },
  RevertToSelf: {
    parameters: [],
    result: "i32", // BOOL
  },
  OpenThreadToken: {
    parameters: [
      "usize", // HANDLE ThreadHandle
      "u32", // DWORD DesiredAccess
      "i32", // BOOL OpenAsSelf
      "buffer", // PHANDLE TokenHandle
    ],
    result: "i32", // BOOL
  },
  LookupAccountSidW: {
    parameters: [
      "buffer", // LPCWSTR lpSystemName (NULL: this machine)
      "usize", // PSID Sid
      "buffer", // LPWSTR Name
      "buffer", // LPDWORD cchName
      "buffer", // LPWSTR ReferencedDomainName
      "buffer", // LPDWORD cchReferencedDomainName
      "buffer", // PSID_NAME_USE peUse
    ],
    result: "i32", // BOOL
  },
  LookupAccountNameW: {
    parameters: [
      "buffer", // LPCWSTR lpSystemName (NULL: this machine)
      "buffer", // LPCWSTR lpAccountName
      "buffer", // PSID Sid
      "buffer", // LPDWORD cbSid
      "buffer", // LPWSTR ReferencedDomainName
      "buffer", // LPDWORD cchReferencedDomainName
      "buffer", // PSID_NAME_USE peUse
    ],
    result: "i32", // BOOL
  },
  ConvertStringSidToSidW: {
    parameters: [
      "buffer", // LPCWSTR StringSid
      "buffer", // PSID *Sid (LocalFree)
    ],
    result: "i32", // BOOL
  },
  ConvertStringSecurityDescriptorToSecurityDescriptorW: {
    parameters: [
      "buffer", // LPCWSTR StringSecurityDescriptor
      "u32", // DWORD StringSDRevision
      "buffer", // PSECURITY_DESCRIPTOR *SecurityDescriptor
      "buffer", // PULONG SecurityDescriptorSize
    ],
    result: "i32", // BOOL
  },
  ConvertSecurityDescriptorToStringSecurityDescriptorW: {
    parameters: [
      "usize", // PSECURITY_DESCRIPTOR SecurityDescriptor
      "u32", // DWORD RequestedStringSDRevision
      "u32", // SECURITY_INFORMATION SecurityInformation
      "buffer", // LPWSTR *StringSecurityDescriptor
      "buffer", // PULONG StringSecurityDescriptorLen
    ],
    result: "i32", // BOOL
  },
  GetSecurityInfo: {
    parameters: [
      "usize", // HANDLE handle
      "u32", // SE_OBJECT_TYPE ObjectType
      "u32", // SECURITY_INFORMATION SecurityInfo
      "buffer", // PSID *ppsidOwner
      "buffer", // PSID *ppsidGroup
      "buffer", // PACL *ppDacl
      "buffer", // PACL *ppSacl
      "buffer", // PSECURITY_DESCRIPTOR *ppSecurityDescriptor
    ],
    result: "u32", // DWORD (a Win32 error; no GetLastError)
  },
  InitializeSecurityDescriptor: {
    parameters: [
      "buffer", // PSECURITY_DESCRIPTOR pSecurityDescriptor
      "u32", // DWORD dwRevision
    ],
    result: "i32", // BOOL
  },
  SetSecurityDescriptorDacl: {
    parameters: [
      "buffer", // PSECURITY_DESCRIPTOR pSecurityDescriptor
      "i32", // BOOL bDaclPresent
      "usize", // PACL pDacl
      "i32", // BOOL bDaclDefaulted
    ],
    result: "i32", // BOOL
  },
} as const satisfies Deno.ForeignLibraryInterface;

const ntdllSymbols = {
  RtlNtStatusToDosError: {
    parameters: ["u32"], // NTSTATUS Status
    result: "u32", // ULONG
  },
  NtQueryInformationFile: {
    parameters: [
      "usize", // HANDLE FileHandle
      "buffer", // PIO_STATUS_BLOCK IoStatusBlock
      "buffer", // PVOID FileInformation
      "u32", // ULONG Length
      "u32", // FILE_INFORMATION_CLASS FileInformationClass
    ],
    result: "u32", // NTSTATUS
  },
  /** Wine's version string; absent on Windows, so tests can tell where Wine differs (Wine only). */
  wine_get_version: {
    parameters: [],
    result: "pointer", // const char *
    optional: true,
  },
  /** Lists `\\.\pipe\` with each pipe's current and maximum instances (Windows NT 3.1+). */
  NtQueryDirectoryFile: {
    parameters: [
      "usize", // HANDLE FileHandle
      "usize", // HANDLE Event (NULL)
      "usize", // PIO_APC_ROUTINE ApcRoutine (NULL)
      "usize", // PVOID ApcContext (NULL)
      "buffer", // PIO_STATUS_BLOCK IoStatusBlock
      "buffer", // PVOID FileInformation
      "u32", // ULONG Length
      "u32", // FILE_INFORMATION_CLASS FileInformationClass
      "i32", // BOOLEAN ReturnSingleEntry
      "buffer", // PUNICODE_STRING FileName (NULL: every entry)
      "i32", // BOOLEAN RestartScan
    ],
    result: "u32", // NTSTATUS
  },
} as const satisfies Deno.ForeignLibraryInterface;

/** kernel32's functions, typed. */
export type Kernel32 = Deno.DynamicLibrary<typeof kernel32Symbols>["symbols"];
/** advapi32's functions, typed. */
export type Advapi32 = Deno.DynamicLibrary<typeof advapi32Symbols>["symbols"];
/** ntdll's functions, typed. */
export type Ntdll = Deno.DynamicLibrary<typeof ntdllSymbols>["symbols"];

function open<S extends Deno.ForeignLibraryInterface>(dll: string, symbols: S): Deno.DynamicLibrary<S> {
  if (Deno.build.os !== "windows") {
    throw new Deno.errors.NotSupported(`Cannot open "${dll}": it exists only on Windows`);
  }
  try {
    return Deno.dlopen(dll, symbols);
  } catch (cause) {
    throw new Error(`Cannot open "${dll}": run with --allow-ffi on Windows`, { cause });
  }
}

let k32: Kernel32 | undefined;
let adv: Advapi32 | undefined;
let nt: Ntdll | undefined;

/** kernel32.dll, opened on first call. */
export function kernel32(): Kernel32 {
  return k32 ??= open("kernel32.dll", kernel32Symbols).symbols;
}

/** advapi32.dll, opened on first call. */
export function advapi32(): Advapi32 {
  return adv ??= open("advapi32.dll", advapi32Symbols).symbols;
}

/** ntdll.dll, opened on first call. */
export function ntdll(): Ntdll {
  return nt ??= open("ntdll.dll", ntdllSymbols).symbols;
}

// --- constants -------------------------------------------------------------------------------

/** `INVALID_HANDLE_VALUE` as a `usize` result: (HANDLE)-1. */
export const INVALID_HANDLE_VALUE = 0xffff_ffff_ffff_ffffn;
/** The `GetCurrentProcess()` pseudo-handle, (HANDLE)-1. */
export const CURRENT_PROCESS = 0xffff_ffff_ffff_ffffn;
/** `INFINITE` timeout. */
export const INFINITE = 0xffff_ffff;

// CreateNamedPipeW dwOpenMode
export const PIPE_ACCESS_DUPLEX = 0x0000_0003;
export const FILE_FLAG_FIRST_PIPE_INSTANCE = 0x0008_0000;
export const FILE_FLAG_OVERLAPPED = 0x4000_0000;

// CreateNamedPipeW dwPipeMode
export const PIPE_TYPE_BYTE = 0x0;
export const PIPE_TYPE_MESSAGE = 0x4;
export const PIPE_READMODE_BYTE = 0x0;
export const PIPE_READMODE_MESSAGE = 0x2;
export const PIPE_WAIT = 0x0;
export const PIPE_REJECT_REMOTE_CLIENTS = 0x8;
export const PIPE_UNLIMITED_INSTANCES = 255;

// CreateFileW
export const GENERIC_READ = 0x8000_0000;
export const GENERIC_WRITE = 0x4000_0000;
export const OPEN_EXISTING = 3;
export const SECURITY_SQOS_PRESENT = 0x0010_0000;
export const SECURITY_IDENTIFICATION = 0x0001_0000;
export const FILE_LIST_DIRECTORY = 0x0001;
export const SYNCHRONIZE = 0x0010_0000;
export const FILE_SHARE_READ = 0x1;
export const FILE_SHARE_WRITE = 0x2;

// SetFileCompletionNotificationModes
export const FILE_SKIP_COMPLETION_PORT_ON_SUCCESS = 0x1;

// Tokens and security descriptors
export const TOKEN_QUERY = 0x0008;
export const PROCESS_QUERY_LIMITED_INFORMATION = 0x1000; // Windows Vista
export const TOKEN_USER = 1; // TOKEN_INFORMATION_CLASS TokenUser
export const TOKEN_GROUPS = 2; // TokenGroups
export const TOKEN_OWNER = 4; // TokenOwner: the owner of objects the token creates
export const TOKEN_ELEVATION = 20; // TokenElevation
export const TOKEN_INTEGRITY_LEVEL = 25; // TokenIntegrityLevel
/** The `GetCurrentThread()` pseudo-handle, (HANDLE)-2. */
export const CURRENT_THREAD = 0xffff_ffff_ffff_fffen;
// SID_AND_ATTRIBUTES.Attributes of a group
export const SE_GROUP_ENABLED = 0x4;
export const SE_GROUP_USE_FOR_DENY_ONLY = 0x10;
export const SDDL_REVISION_1 = 1;
export const SECURITY_DESCRIPTOR_REVISION = 1;
export const SECURITY_DESCRIPTOR_MIN_LENGTH = 40; // x64
export const SE_KERNEL_OBJECT = 6;
export const OWNER_SECURITY_INFORMATION = 0x1;
export const DACL_SECURITY_INFORMATION = 0x4;

// NtQueryInformationFile
export const FILE_PIPE_LOCAL_INFORMATION = 24; // FILE_INFORMATION_CLASS FilePipeLocalInformation
// NtQueryDirectoryFile
export const FILE_DIRECTORY_INFORMATION = 1; // FILE_INFORMATION_CLASS FileDirectoryInformation

// Win32 errors the engine branches on
export const ERROR_FILE_NOT_FOUND = 2;
export const ERROR_ACCESS_DENIED = 5;
export const ERROR_INVALID_PARAMETER = 87;
export const ERROR_BROKEN_PIPE = 109;
export const ERROR_SEM_TIMEOUT = 121;
export const ERROR_INSUFFICIENT_BUFFER = 122;
export const ERROR_PIPE_BUSY = 231;
export const ERROR_NO_DATA = 232;
export const ERROR_PIPE_NOT_CONNECTED = 233;
export const ERROR_MORE_DATA = 234;
export const ERROR_PIPE_CONNECTED = 535;
export const ERROR_OPERATION_ABORTED = 995;
export const ERROR_IO_PENDING = 997;
export const ERROR_HANDLES_CLOSED = 676;
export const ERROR_NOT_FOUND = 1168;
export const ERROR_NONE_MAPPED = 1332;
export const ERROR_CANT_OPEN_ANONYMOUS = 1347;
export const ERROR_CANNOT_IMPERSONATE = 1368;

// NTSTATUS values read from OVERLAPPED.Internal
export const STATUS_SUCCESS = 0;
export const STATUS_PENDING = 0x103;
export const STATUS_NO_MORE_FILES = 0x8000_0006;
export const STATUS_BAD_DEVICE_TYPE = 0xc000_00cb;
