/**
 * The embedded demo's campaign: simulated callees whose numbers pick their behaviour
 * (see demoPersona in src/sim/persona.ts). Created once; never touches other campaigns.
 */
import type { Db } from '../store/db';

export const DEMO_CAMPAIGN_NAME = 'Demo campaign (simulated callees)';

const DEMO_CONTACTS: Array<[string, string]> = [
  ['+12125550100', 'Ada Lovelace'],
  ['+12125550101', 'Grace Hopper'],
  ['+12125550102', 'Alan Turing'],
  ['+12125550103', 'Katherine Johnson'],
  ['+12125550104', 'Edsger Dijkstra'],
  ['+12125550105', 'Barbara Liskov'],
  ['+12125550106', 'Donald Knuth'],
  ['+12125550107', 'Margaret Hamilton'],
  ['+12125550108', 'Claude Shannon'],
  ['+12125550109', 'Radia Perlman'],
];

/** Create the demo campaign (calling window all day, since its callees are simulated) if it is not there. */
export async function ensureDemoCampaign(db: Db): Promise<number> {
  return db.tx(async (q) => {
    const found = await q.query<{ id: number }>('select id from campaigns where name = $1 order by id limit 1', [
      DEMO_CAMPAIGN_NAME,
    ]);
    if (found.rows.length) return found.rows[0].id;
    const c = await q.query<{ id: number }>(
      `insert into campaigns (name, timezone, window_start, window_end, max_concurrent, calls_per_second, max_attempts, settings)
       values ($1, 'America/New_York', '00:00', '23:59:59', 3, 1, 2, $2) returning id`,
      [
        DEMO_CAMPAIGN_NAME,
        JSON.stringify({
          greeting:
            'Hello {{contact.name}}, this is the reminder service of Example Dental. You have an appointment on Tuesday. Can you make it?',
          description:
            'Simulated callees: numbers ending in 1 are busy, 2 do not answer, 3 hang up mid-call, 4 ask not to be called again; the rest talk.',
        }),
      ],
    );
    const id = c.rows[0].id;
    await q.query(
      `insert into phone_numbers (campaign_id, number, label) values ($1, '+12125559000', 'demo line A'), ($1, '+13125559001', 'demo line B')`,
      [id],
    );
    for (const [phone, name] of DEMO_CONTACTS) {
      await q.query(
        `insert into contacts (campaign_id, phone, name, timezone, timezone_source) values ($1, $2, $3, 'America/New_York', 'number')`,
        [id, phone, name],
      );
    }
    return id;
  });
}
