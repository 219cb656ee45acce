import { context, SpanStatusCode, trace, type Context, type Span } from '@opentelemetry/api';

/**
 * Run `fn` with `span` active (a child context of `parent`, default: the active one). A thrown error is recorded
 * on the span (exception event, status ERROR) and rethrown; the span always ends.
 */
export async function runInSpan<T>(span: Span, fn: () => Promise<T>, parent: Context = context.active()): Promise<T> {
  try {
    return await context.with(trace.setSpan(parent, span), fn);
  } catch (err) {
    span.recordException(err as Error);
    span.setStatus({ code: SpanStatusCode.ERROR, message: (err as Error).message });
    throw err;
  } finally {
    span.end();
  }
}
