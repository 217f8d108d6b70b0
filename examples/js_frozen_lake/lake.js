// FrozenLake game logic: a seeded map, moves, rewards and the text the model sees.
// Same rules and text as mcpsim.envs.frozen_lake (Python), but its own random generator: a seed gives a map
// that is stable for this server, not the map the Python server draws for that seed.

export const ACTIONS = ["LEFT", "DOWN", "RIGHT", "UP"];
const MOVES = { LEFT: [0, -1], DOWN: [1, 0], RIGHT: [0, 1], UP: [-1, 0] };
const CELL_NAMES = { S: "start", F: "frozen", H: "hole", G: "goal" };

/** mulberry32 on a 32-bit state folded from the (up to 64-bit) seed. */
export function rng(seed) {
  const big = BigInt(seed);
  let state = Number((big ^ (big >> 32n)) & 0xffffffffn) >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function reachable(board) {
  const size = board.length;
  const seen = new Set(["0,0"]);
  const stack = [[0, 0]];
  while (stack.length) {
    const [r, c] = stack.pop();
    for (const [dr, dc] of Object.values(MOVES)) {
      const [nr, nc] = [r + dr, c + dc];
      if (nr < 0 || nc < 0 || nr >= size || nc >= size || seen.has(`${nr},${nc}`)) continue;
      if (board[nr][nc] === "G") return true;
      if (board[nr][nc] !== "H") {
        seen.add(`${nr},${nc}`);
        stack.push([nr, nc]);
      }
    }
  }
  return false;
}

/** A random map with a safe path from S (top left) to G (bottom right), like Gymnasium's generate_random_map. */
export function generateMap(size, frozenProbability, random) {
  for (;;) {
    const board = Array.from({ length: size }, () =>
      Array.from({ length: size }, () => (random() < frozenProbability ? "F" : "H")),
    );
    board[0][0] = "S";
    board[size - 1][size - 1] = "G";
    if (reachable(board)) return board.map((row) => row.join(""));
  }
}

export class Episode {
  constructor(seed, config = {}) {
    const size = Number(config.map_size ?? 4);
    if (!Number.isInteger(size) || size < 2 || size > 32) {
      throw new Error(`map_size must be between 2 and 32, got ${config.map_size}`);
    }
    this.random = rng(seed);
    this.board = generateMap(size, Number(config.frozen_probability ?? 0.8), this.random);
    this.slippery = Boolean(config.is_slippery);
    this.maxSteps = Number(config.max_steps ?? 100);
    this.row = 0;
    this.col = 0;
    this.stepCount = 0;
    this.lastReward = 0;
    this.terminated = false;
    this.truncated = false;
  }

  render() {
    const size = this.board.length;
    const grid = this.board.map((line) => line.split(""));
    const cell = grid[this.row][this.col];
    grid[this.row][this.col] = "@";
    return (
      `FrozenLake ${size}x${size}. You are '@'. S=start, F=frozen (safe), H=hole, G=goal.\n` +
      grid.map((line) => line.join("")).join("\n") +
      `\nPosition: row ${this.row}, column ${this.col} (${CELL_NAMES[cell]}). Steps taken: ${this.stepCount}.`
    );
  }

  meta() {
    return {
      mcpsim: {
        reward: this.lastReward,
        terminated: this.terminated,
        truncated: this.truncated,
        step: this.stepCount,
      },
    };
  }

  /** One move; throws an Error whose message is shown to the model for a bad action or a finished episode. */
  step(action) {
    const key = String(action).trim().toUpperCase();
    if (!ACTIONS.includes(key)) {
      throw new Error(`Invalid action '${action}'. Valid actions: ${ACTIONS.join(", ")}.`);
    }
    if (this.terminated || this.truncated) {
      const how = this.terminated ? "terminated" : "was truncated";
      throw new Error(
        `The episode ${how} at step ${this.stepCount}; no more moves are accepted. ` +
          "Start a new episode (a new session) to play again.",
      );
    }
    let index = ACTIONS.indexOf(key);
    if (this.slippery) index = (index + [3, 0, 1][Math.floor(this.random() * 3)]) % 4;
    const [dr, dc] = MOVES[ACTIONS[index]];
    const size = this.board.length;
    this.row = Math.min(Math.max(this.row + dr, 0), size - 1);
    this.col = Math.min(Math.max(this.col + dc, 0), size - 1);
    this.stepCount += 1;
    const cell = this.board[this.row][this.col];
    this.lastReward = cell === "G" ? 1.0 : 0.0;
    this.terminated = cell === "G" || cell === "H";
    this.truncated = !this.terminated && this.stepCount >= this.maxSteps;
  }
}
