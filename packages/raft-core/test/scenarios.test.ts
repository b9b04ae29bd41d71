// Golden scenario transcripts: a script renders a readable log of commands,
// messages and node states, checked against test/testdata/*.txt. Review changes as diffs;
// regenerate with `pnpm --filter @rockraft/raft-core exec vitest run scenarios -u`.
import { expect, test } from "vitest";
import { runScenario } from "./helpers/scenario.js";

test("add a learner and promote it", async () => {
  const transcript = runScenario(`
    # Nodes 1-3 form the cluster; node 4 starts empty, outside it.
    cluster 1,2,3 spare 4
    elect 1
    propose 1 x=1
    # The learner receives the whole log but does not vote or count toward commits.
    add-learner 1 4
    status
    # Promotion goes through the joint configuration; the leader leaves it by itself.
    promote 1 4
    status
  `);
  await expect(transcript).toMatchFileSnapshot("testdata/add-learner-and-promote.txt");
});

test("replace the leader", async () => {
  const transcript = runScenario(`
    cluster 1,2,3 spare 4
    elect 1
    propose 1 x=1
    # One change: node 1 leaves, node 4 joins, through C_old,new then C_new.
    change 1 voters=2,3,4 learners=
    status
    # The old leader stepped down once C_new committed; the new voters elect a leader.
    tick 2 20
    status
    propose 2 after
    status
  `);
  await expect(transcript).toMatchFileSnapshot("testdata/replace-the-leader.txt");
});

test("a follower far behind recovers by snapshot", async () => {
  const transcript = runScenario(
    `
    cluster 1,2,3
    elect 1
    isolate 3
    propose 1 a
    propose 1 b
    propose 1 c
    # The leader snapshots its state and compacts its log past what node 3 needs.
    snapshot 1
    recover
    # A heartbeat round finds node 3 behind the log's start: it is sent the snapshot.
    tick 1
    report-snapshot 1 3 ok
    propose 1 d
    status
  `,
  );
  await expect(transcript).toMatchFileSnapshot("testdata/follower-recovers-by-snapshot.txt");
});
