/**
 * The engine shares the event loop: while one connection has data ready all the time, timers and other
 * connections keep running. Reads that complete at once (inline, or from a completion port that always
 * has a packet ready) would otherwise only ever yield microtasks and starve every macrotask.
 */
import assert from "node:assert/strict";
import { connect, type PipeConn } from "../mod.ts";
import { pair } from "./_pair.ts";
import { pattern, serve, uniqueName, within } from "./_pipes.ts";

const MIB = 1024 * 1024;
/** Writes in flight at once, like a busy peer. */
const IN_FLIGHT = 4;
/**
 * Bounds for a loaded 2-core machine. Alone, the timer is at worst ~70 ms late; with a load average of
 * 25 (seven test suites at once) single gaps of 200-460 ms come from CPU contention, not the engine,
 * while most ticks stay on time. Unfair, the timer fired once in 9.7 s. So: no gap near a second, 95%
 * of the gaps short, and on average a tick at least every 40 ms (about 20 ms measured under load).
 */
const MAX_TIMER_GAP = 750;
const MAX_ROUND_TRIP_GAP = 750;
const MAX_P95_GAP = 150;
const MAX_MEAN_TICK = 40;
/** Checked synchronously in the loops: a starved event loop never fires a timer, not even within()'s. */
const STARVED_AFTER = 90_000;

/** Write `total` bytes with {@linkcode IN_FLIGHT} 1 MiB writes in flight while reading them back. */
async function transfer(client: PipeConn, server: PipeConn, total: number, started: number) {
  const data = pattern(MIB);
  const writing = (async () => {
    const inFlight = new Set<Promise<void>>();
    for (let sent = 0; sent < total; sent += MIB) {
      const write: Promise<void> = client.writeMessage(data).then(() => void inFlight.delete(write));
      inFlight.add(write);
      if (inFlight.size >= IN_FLIGHT) await Promise.race(inFlight);
    }
    await Promise.all(inFlight);
  })();
  const reader = server.readable.getReader();
  let received = 0;
  await within(
    (async () => {
      while (received < total) {
        const { value, done } = await reader.read();
        if (done) break;
        received += value.length;
        if (performance.now() - started > STARVED_AFTER) throw new Error("The transfer made no end");
      }
    })(),
    STARVED_AFTER + 30_000,
    `${total / MIB} MiB through the byte pipe`,
  );
  reader.releaseLock();
  await within(writing, 10_000, "the writer");
  assert.equal(received, total);
}

Deno.test("a 10 ms timer and another connection keep running while 256 MiB stream through a byte pipe", async () => {
  await using bulk = await pair({ name: uniqueName("fairbulk"), mode: "byte" });
  await using echo = serve({ name: uniqueName("fairecho") });
  await using other = await connect({ name: echo.listener.path });
  // Warm up first (code compiled, FFI symbols bound: hundreds of ms when cold under Wine), so only the
  // steady state is measured.
  await transfer(bulk.client, bulk.server, 8 * MIB, performance.now());

  const started = performance.now();
  let last = started;
  let timerGap = 0;
  const gaps: number[] = [];
  let ticks = 0;
  const timer = setInterval(() => {
    const now = performance.now();
    timerGap = Math.max(timerGap, now - last);
    gaps.push(now - last);
    last = now;
    ticks++;
  }, 10);

  let done = false;
  let roundTrips = 0;
  let roundTripGap = 0;
  const pinging = (async () => {
    let since = performance.now();
    const ping = pattern(16);
    while (!done) {
      await other.writeMessage(ping);
      assert.deepEqual(await other.readMessage(), ping);
      const now = performance.now();
      roundTripGap = Math.max(roundTripGap, now - since);
      since = now;
      roundTrips++;
      if (now - started > STARVED_AFTER) throw new Error("The round trips starved everything else");
    }
  })();

  try {
    await transfer(bulk.client, bulk.server, 256 * MIB, started);
  } finally {
    // A timer that stopped firing altogether shows here: the time since its last tick.
    timerGap = Math.max(timerGap, performance.now() - last);
    done = true;
    clearInterval(timer);
    await within(pinging, 10_000, "the last round trip");
  }
  const seconds = (performance.now() - started) / 1000;
  gaps.sort((a, b) => a - b);
  const p95 = gaps.length ? gaps[Math.floor(gaps.length * 0.95)] : Infinity;
  console.log(
    `256 MiB in ${seconds.toFixed(1)} s: ${ticks} timer ticks, worst gap ${timerGap.toFixed(0)} ms, ` +
      `95th percentile ${p95.toFixed(0)} ms; ` +
      `${roundTrips} round trips, worst gap ${roundTripGap.toFixed(0)} ms`,
  );
  assert.ok(timerGap < MAX_TIMER_GAP, `the 10 ms timer waited ${timerGap.toFixed(0)} ms`);
  assert.ok(p95 < MAX_P95_GAP, `95% of the timer's gaps were under ${p95.toFixed(0)} ms`);
  const meanTick = (seconds * 1000) / Math.max(ticks, 1);
  assert.ok(meanTick < MAX_MEAN_TICK, `the 10 ms timer ran every ${meanTick.toFixed(0)} ms on average`);
  assert.ok(roundTrips > 10, `only ${roundTrips} round trips on the other connection`);
  assert.ok(
    roundTripGap < MAX_ROUND_TRIP_GAP,
    `the other connection waited ${roundTripGap.toFixed(0)} ms for a round trip`,
  );
});
