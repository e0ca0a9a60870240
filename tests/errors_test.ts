/**
 * The one error gate: native codes become the `Deno.errors` kind a caller catches, with the raw code
 * and a sentence. Plain text work, so it runs on every platform.
 */
import assert from "node:assert/strict";
import { win32Error } from "../pipe/errors.ts";

Deno.test("Win32 codes of remote paths, quota and a full instance limit reach callers as their real kind", () => {
  const cases: [number, string, ErrorConstructor | (new (...args: never[]) => Error)][] = [
    [53, "connect to", Deno.errors.NotFound], // ERROR_BAD_NETPATH: no such server
    [67, "connect to", Deno.errors.NotFound], // ERROR_BAD_NET_NAME
    [1326, "connect to", Deno.errors.PermissionDenied], // ERROR_LOGON_FAILURE
    [1816, "write to", Deno.errors.Busy], // ERROR_NOT_ENOUGH_QUOTA
    [231, "connect to", Deno.errors.TimedOut], // a client: every instance busy
    [231, "create named pipe", Deno.errors.AddrInUse], // a server: the instance limit is reached
  ];
  for (const [code, action, kind] of cases) {
    const error = win32Error(code, action, "\\\\.\\pipe\\x");
    assert.ok(error instanceof kind, `${code} on "${action}" is ${error.constructor.name}: ${error.message}`);
    assert.equal(error.code, code);
    assert.match(error.message, new RegExp(`^Cannot ${action} ".+": .+ \\(${code}\\)$`));
  }
});
