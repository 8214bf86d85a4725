/** Offset pagination and time window shared by the three list endpoints. */
export interface PageQuery {
  limit: number;
  offset: number;
  /** Inclusive bounds on created_at, epoch ms. */
  since?: number | undefined;
  until?: number | undefined;
}
