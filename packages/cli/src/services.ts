import { isServiceName, SERVICE_NAMES, SERVICES, type ServiceName } from '@mailgate/contracts';
import type { ServiceDefinition } from '@mailgate/runtime';

/**
 * Where each service's definition lives (the SERVICES table of @mailgate/contracts). Loaded lazily by package name,
 * so one image (and one CLI) runs any service, and a service that is not installed is reported, not a crash of the
 * others.
 */
export const SERVICE_PACKAGES: Readonly<Record<ServiceName, string>> = Object.fromEntries(
  SERVICE_NAMES.map((n) => [n, SERVICES[n].package]),
) as Record<ServiceName, string>;

export { isServiceName };

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyServiceDefinition = ServiceDefinition<any>;

export async function loadService(name: ServiceName): Promise<AnyServiceDefinition> {
  const spec = SERVICE_PACKAGES[name];
  const mod = (await import(spec)) as { service?: AnyServiceDefinition };
  if (!mod.service) throw new Error(`${spec} does not export a 'service' definition`);
  return mod.service;
}

/** Which services can be loaded in this installation. */
export async function availableServices(): Promise<
  { name: ServiceName; def?: AnyServiceDefinition; error?: string }[]
> {
  return Promise.all(
    SERVICE_NAMES.map(async (name) => {
      try {
        return { name, def: await loadService(name) };
      } catch (e) {
        return { name, error: (e as Error).message.split('\n')[0] ?? 'unknown error' };
      }
    }),
  );
}
