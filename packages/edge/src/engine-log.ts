/**
 * The engine side of a command logs through the edge's pino logger, so one trace id (made by the
 * edge for each request, `CommandContext.traceId`) links the edge's line and the engine's lines.
 *
 * @example
 *   const logger = pino({ level: 'debug' });
 *   const venue = await openEmbeddedVenue(target, { instruments, ...engineLogOptions(logger) });
 *   await startEdge({ gateway: venue, logger, ... });
 */
import { pino, type Logger } from 'pino';
import type { EngineLogRecord } from '@bourse/engine';

export function engineLogOptions(logger: Logger): { log: (r: EngineLogRecord) => void; logDebug: boolean } {
  const engine = logger.child({ side: 'engine' });
  return {
    log: (r) => {
      const { level, msg, ...fields } = r;
      engine[level](fields, msg);
    },
    logDebug: engine.isLevelEnabled('debug'),
  };
}

/** The CLI's logger: level from BOURSE_LOG_LEVEL (default 'warn'), JSON lines on stdout. */
export function cliLogger(name: string): Logger {
  return pino({ name, level: process.env.BOURSE_LOG_LEVEL ?? 'warn' });
}
