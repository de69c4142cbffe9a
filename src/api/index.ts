/** HTTP API and dashboard mounting (express 4 / Node-RED httpNode). */
export { createApiRouter, parseId, ApiError, type ApiRouterOptions, type CampaignControlApi } from './router';
export {
  mountDashboard,
  dashboardConfig,
  dashboardDir,
  type DashboardOptions,
  type DashboardConfig,
} from './dashboard';
export {
  validateCampaignInput,
  campaignStatus,
  getCampaign,
  listCampaigns,
  createCampaign,
  updateCampaign,
} from './campaigns';
