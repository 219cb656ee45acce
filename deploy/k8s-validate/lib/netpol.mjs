// A small NetworkPolicy evaluator (networking.k8s.io/v1 semantics) for the rendered chart: given the policies, a
// set of endpoints (pods with namespace/labels/IP, or external IPs) answers whether a TCP/UDP flow is allowed.
//
// Rules implemented: a pod selected by no policy of a direction is open in that direction; a selected pod allows
// a flow when any selecting policy of that direction has a rule whose peers and ports match (rules are unions).
// A flow needs both the source's egress and the destination's ingress. Peers: podSelector (the policy's
// namespace), namespaceSelector (+ podSelector), ipBlock (cidr minus except; matched against the endpoint's IP,
// as CNIs do for pod IPs too). Ports: number (named ports are not used by this chart), protocol (TCP by default),
// endPort. Selectors: matchLabels and matchExpressions (In, NotIn, Exists, DoesNotExist).
import net from 'node:net';

/** @typedef {{ name: string, namespace?: string, labels?: Record<string,string>, ip: string }} Endpoint */

export function selectorMatches(sel, labels = {}) {
  if (!sel) return true;
  for (const [k, v] of Object.entries(sel.matchLabels ?? {})) if (labels[k] !== v) return false;
  for (const e of sel.matchExpressions ?? []) {
    const has = Object.hasOwn(labels, e.key);
    const val = labels[e.key];
    switch (e.operator) {
      case 'In':
        if (!has || !e.values.includes(val)) return false;
        break;
      case 'NotIn':
        if (has && e.values.includes(val)) return false;
        break;
      case 'Exists':
        if (!has) return false;
        break;
      case 'DoesNotExist':
        if (has) return false;
        break;
      default:
        throw new Error(`unknown selector operator ${e.operator}`);
    }
  }
  return true;
}

function inCidr(ip, cidr) {
  const [addr, len] = cidr.split('/');
  const type = net.isIP(addr) === 6 ? 'ipv6' : 'ipv4';
  if ((net.isIP(ip) === 6 ? 'ipv6' : 'ipv4') !== type) return false;
  const list = new net.BlockList();
  list.addSubnet(addr, Number(len ?? (type === 'ipv4' ? 32 : 128)), type);
  return list.check(ip, type);
}

/** Namespace labels: Kubernetes sets kubernetes.io/metadata.name on every namespace. */
const nsLabels = (ns, extra = {}) => ({ 'kubernetes.io/metadata.name': ns, ...extra });

/** Does `peer` (from a policy in namespace `policyNs`) match endpoint `ep`? */
export function peerMatches(peer, ep, policyNs, namespaces = {}) {
  if (peer.ipBlock) {
    if (!inCidr(ep.ip, peer.ipBlock.cidr)) return false;
    return !(peer.ipBlock.except ?? []).some((c) => inCidr(ep.ip, c));
  }
  if (!ep.namespace) return false; // selectors match pods only
  if (peer.namespaceSelector) {
    if (!selectorMatches(peer.namespaceSelector, nsLabels(ep.namespace, namespaces[ep.namespace]))) return false;
  } else if (ep.namespace !== policyNs) {
    return false;
  }
  return peer.podSelector ? selectorMatches(peer.podSelector, ep.labels) : true;
}

function portMatches(rulePorts, port, protocol) {
  if (!rulePorts || rulePorts.length === 0) return true;
  return rulePorts.some((p) => {
    if ((p.protocol ?? 'TCP') !== protocol) return false;
    if (p.port === undefined) return true;
    if (typeof p.port !== 'number') throw new Error(`named port ${p.port} not supported by the evaluator`);
    return p.endPort ? port >= p.port && port <= p.endPort : port === p.port;
  });
}

const selects = (np, ep, ns) => ep.namespace === ns && selectorMatches(np.spec.podSelector, ep.labels);
const types = (np) => np.spec.policyTypes ?? (np.spec.egress ? ['Ingress', 'Egress'] : ['Ingress']);

/**
 * Is the flow src → dst:port/protocol allowed by `policies` (all in namespace `ns`)? Returns { allowed, reason }.
 */
export function evaluate(policies, { src, dst, port, protocol = 'TCP', ns, namespaces = {} }) {
  const egressPols = src.namespace ? policies.filter((p) => types(p).includes('Egress') && selects(p, src, ns)) : [];
  if (egressPols.length > 0) {
    const ok = egressPols.some((p) =>
      (p.spec.egress ?? []).some(
        (r) =>
          (!r.to || r.to.length === 0 || r.to.some((peer) => peerMatches(peer, dst, ns, namespaces))) &&
          portMatches(r.ports, port, protocol),
      ),
    );
    if (!ok) return { allowed: false, reason: `egress of ${src.name} (${egressPols.map((p) => p.metadata.name)})` };
  }
  const ingressPols = dst.namespace ? policies.filter((p) => types(p).includes('Ingress') && selects(p, dst, ns)) : [];
  if (ingressPols.length > 0) {
    const ok = ingressPols.some((p) =>
      (p.spec.ingress ?? []).some(
        (r) =>
          (!r.from || r.from.length === 0 || r.from.some((peer) => peerMatches(peer, src, ns, namespaces))) &&
          portMatches(r.ports, port, protocol),
      ),
    );
    if (!ok) return { allowed: false, reason: `ingress of ${dst.name} (${ingressPols.map((p) => p.metadata.name)})` };
  }
  return { allowed: true, reason: 'allowed' };
}
