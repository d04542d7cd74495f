// Boots the service: config, preflight, listen; stops gracefully on SIGINT/SIGTERM.
import { loadConfig } from "./config.ts";
import { createService } from "./service.ts";
import { StartupError } from "./startupError.ts";

try {
  const config = loadConfig();
  const service = await createService(config);
  await service.start();
  await service.app.listen({ host: config.HOST, port: config.PORT });
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, async () => {
      service.app.log.info({ signal }, "shutting down");
      await service.stop();
      process.exit(0);
    });
  }
} catch (error) {
  // A bad setting or a failed preflight: the problems, not a stack trace.
  if (error instanceof StartupError) {
    console.error(error.message);
    process.exit(2);
  }
  throw error;
}
