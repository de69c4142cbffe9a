/** What every route module of the API shares: the database, the campaign engine, limits, the logger. */
import type { Db, Queryable } from '../store/db';
import type { CampaignRow } from '../store/campaigns';
import type { ApiLimits } from './http';
import type { AuthMode } from './auth';

/** What the API needs from the campaign engine (src/campaign/control.ts `campaignControl`). */
export interface CampaignControlApi {
  start(id: number): Promise<unknown>;
  stop(id: number): Promise<unknown>;
  pause(id: number): Promise<unknown>;
  resume(id: number): Promise<unknown>;
  status?(id: number): Promise<unknown>;
}

export interface ApiContext {
  /** The database, or a 503 ApiError. */
  db(): Promise<Db>;
  /** The campaign engine, or a 503 ApiError. */
  control(): CampaignControlApi;
  /** The campaign, or a 404 ApiError. */
  mustCampaign(q: Queryable, id: number): Promise<CampaignRow>;
  limits: ApiLimits;
  /** Where whole-call recordings are (RECORDINGS_DIR). */
  recordingsDir: string;
  authMode: AuthMode;
  log(line: string): void;
}
