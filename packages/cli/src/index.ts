export { main } from './main.js';
export { runDev, type DevHandle } from './dev.js';
export { devSchema, type DevConfig } from './dev-config.js';
export { SERVICE_PACKAGES, loadService, availableServices } from './services.js';
