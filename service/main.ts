// Boots the service: config, preflight, listen; stops gracefully on SIGINT/SIGTERM.
import { ConfigError, loadConfig } from "./config.ts";
import { PreflightError } from "./preflight.ts";
import { createService } from "./service.ts";

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
  if (error instanceof ConfigError || error instanceof PreflightError) {
    console.error(error.message);
    process.exit(2);
  }
  throw error;
}
