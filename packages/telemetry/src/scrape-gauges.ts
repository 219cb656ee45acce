import type { Attributes, Meter, ObservableGauge } from '@opentelemetry/api';

/**
 * Observable gauges read at scrape time by one batch callback (a queue's depth from Redis, offsets from Kafka).
 * `gauges` maps each metric name to its description; `read` reports values by name. When `read` fails, the error
 * is logged as a warning (`unavailable`) and the gauges it had not reported yet have no series this scrape
 * (absent() alerts catch it): a store that is down never fails the whole /metrics response.
 * Returns the function that detaches the callback (shutdown: the meter provider may outlive the service).
 */
export function scrapeGauges<Name extends string>(
  meter: Meter,
  gauges: Readonly<Record<Name, string>>,
  read: (report: (name: Name, value: number, attributes?: Attributes) => void) => Promise<void>,
  onError: { log: { warn(obj: object, msg: string): void }; unavailable: string },
): () => void {
  const byName = new Map<string, ObservableGauge>();
  for (const [name, description] of Object.entries<string>(gauges)) {
    byName.set(name, meter.createObservableGauge(name, { description }));
  }
  const instruments = [...byName.values()];
  const observe: Parameters<Meter['addBatchObservableCallback']>[0] = async (r) => {
    try {
      await read((name, value, attributes) => r.observe(byName.get(name)!, value, attributes));
    } catch (err) {
      onError.log.warn({ err: (err as Error).message }, onError.unavailable);
    }
  };
  meter.addBatchObservableCallback(observe, instruments);
  return () => meter.removeBatchObservableCallback(observe, instruments);
}
