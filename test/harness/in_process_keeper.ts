/**
 * A Keeper inside the test process: a real `ShardHolder` behind the
 * `KeeperLink` Nexus uses, which a test can take down (every call throws)
 * and restart (it forgets every shard, as a real Keeper does). For the unit
 * tests of the root key manager and of key rotation.
 */
import { ShardHolder } from '../../keeper/shard_holder.ts';
import type { KeeperLink } from '../../nexus/root_key/keeper_link.ts';
import type { Shard } from '../../shared/crypto/shard.ts';
import { createLogger, createMemorySink } from '../../shared/log/logger.ts';

const logger = createLogger({ component: 'test', sink: createMemorySink(), level: 'error' });

export interface InProcessKeeper {
  readonly link: KeeperLink;
  /** The shards it holds now (a restart replaces the holder). */
  readonly holder: () => ShardHolder;
  /** Set `isUp` to false to make every call fail as if it were unreachable. */
  readonly state: { isUp: boolean };
  restart(): void;
}

export function inProcessKeeper(name: string, options: { isUp?: boolean } = {}): InProcessKeeper {
  let holder = new ShardHolder({ logger });
  const state = { isUp: options.isUp ?? true };
  const reachable = () => {
    if (!state.isUp) throw new Error(`${name} is down`);
  };
  const link: KeeperLink = {
    name,
    async putShard(shard: Shard) {
      reachable();
      holder.store(shard);
    },
    async listShards() {
      reachable();
      return holder.list();
    },
    async generations() {
      reachable();
      return holder.generations();
    },
    async prune(keepFrom: number) {
      reachable();
      holder.prune(keepFrom);
    },
  };
  return {
    link,
    holder: () => holder,
    state,
    restart() {
      holder = new ShardHolder({ logger });
    },
  };
}
