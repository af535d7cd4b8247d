//! The storm's follow graph: seeded and power-law, so a few authors are followed by many and
//! most users follow a handful.
//!
//! Popularity is a Zipf law over a seeded shuffle of the users: the author of rank `r` (from 1)
//! is picked in proportion to `1 / r^zipf`. How many authors a user follows is a power law too,
//! `P(d) ∝ d^-1.5` for `d` in `1..=max_follows` (median 2, mean about 7 with 100 at most). The
//! same seed and sizes give the same graph.

use crate::scenario::Rng;

/// The exponent of the out-degree law (`P(d) ∝ d^-DEGREE_EXPONENT`).
const DEGREE_EXPONENT: f64 = 1.5;

/// What to build.
#[derive(Clone, Copy, Debug)]
pub struct Spec {
    pub users: usize,
    /// The popularity law's exponent (1.0: the second author has half the first's followers).
    pub zipf: f64,
    /// The most authors one user follows.
    pub max_follows: usize,
    pub seed: u64,
}

/// Who follows whom, by user index.
#[derive(Debug, PartialEq, Eq)]
pub struct Graph {
    /// `follows[u]`: the users `u` follows (distinct, never `u`).
    pub follows: Vec<Vec<usize>>,
    /// `followers[u]`: how many users follow `u`.
    pub followers: Vec<usize>,
}

impl Graph {
    /// Every follow, as `(follower, followee)`.
    pub fn edges(&self) -> impl Iterator<Item = (usize, usize)> + '_ {
        self.follows
            .iter()
            .enumerate()
            .flat_map(|(u, list)| list.iter().map(move |&a| (u, a)))
    }

    pub fn edge_count(&self) -> usize {
        self.follows.iter().map(Vec::len).sum()
    }

    /// Users by follower count, most followed first (ties by index).
    pub fn by_popularity(&self) -> Vec<usize> {
        let mut users: Vec<usize> = (0..self.followers.len()).collect();
        users.sort_by_key(|&u| (std::cmp::Reverse(self.followers[u]), u));
        users
    }
}

/// A cumulative distribution to draw indexes from in `O(log n)`.
struct Cdf(Vec<f64>);

impl Cdf {
    fn new(weights: impl Iterator<Item = f64>) -> Self {
        let mut total = 0.0;
        Self(
            weights
                .map(|w| {
                    total += w;
                    total
                })
                .collect(),
        )
    }

    fn draw(&self, rng: &mut Rng) -> usize {
        let total = self.0.last().copied().unwrap_or(0.0);
        let point = rng.fraction() * total;
        self.0
            .partition_point(|&c| c <= point)
            .min(self.0.len().saturating_sub(1))
    }
}

/// Builds the graph of `spec`.
pub fn build(spec: Spec) -> Graph {
    let n = spec.users;
    let mut rng = Rng::new(spec.seed);
    // Rank → user: a seeded shuffle, so the popular authors are not the first handles.
    let mut ranked: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        ranked.swap(i, rng.below(i + 1));
    }
    let popularity = Cdf::new((1..=n).map(|r| 1.0 / (r as f64).powf(spec.zipf)));
    let most = spec.max_follows.min(n.saturating_sub(1));
    let degree = Cdf::new((1..=most).map(|d| (d as f64).powf(-DEGREE_EXPONENT)));
    let mut follows = Vec::with_capacity(n);
    let mut followers = vec![0; n];
    for user in 0..n {
        let wanted = if most == 0 {
            0
        } else {
            degree.draw(&mut rng) + 1
        };
        let mut chosen: Vec<usize> = Vec::with_capacity(wanted);
        // Draws that hit the user or an author already chosen are drawn again, a bounded
        // number of times (a user near the top of a steep law may run out of luck).
        let mut draws = 0;
        while chosen.len() < wanted && draws < wanted * 50 {
            draws += 1;
            let author = ranked[popularity.draw(&mut rng)];
            if author != user && !chosen.contains(&author) {
                chosen.push(author);
                followers[author] += 1;
            }
        }
        follows.push(chosen);
    }
    Graph { follows, followers }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(users: usize, seed: u64) -> Spec {
        Spec {
            users,
            zipf: 1.0,
            max_follows: 100,
            seed,
        }
    }

    #[test]
    fn the_graph_is_seeded() {
        assert_eq!(build(spec(500, 7)), build(spec(500, 7)));
        assert_ne!(build(spec(500, 7)), build(spec(500, 8)));
    }

    #[test]
    fn follows_are_distinct_never_oneself_and_counted() {
        let graph = build(spec(2_000, 1));
        for (user, list) in graph.follows.iter().enumerate() {
            assert!(
                !list.is_empty() && list.len() <= 100,
                "user {user}: {list:?}"
            );
            assert!(!list.contains(&user));
            let mut sorted = list.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), list.len());
        }
        assert_eq!(graph.followers.iter().sum::<usize>(), graph.edge_count());
        assert_eq!(graph.edges().count(), graph.edge_count());
    }

    #[test]
    fn a_few_authors_are_followed_by_many_and_most_follow_a_handful() {
        let graph = build(spec(5_000, 3));
        let ranked = graph.by_popularity();
        let top = graph.followers[ranked[0]];
        let median_author = graph.followers[ranked[2_500]];
        assert!(top > 1_000, "the top author has {top} followers");
        assert!(median_author <= 3, "the median author has {median_author}");
        let mut degrees: Vec<usize> = graph.follows.iter().map(Vec::len).collect();
        degrees.sort_unstable();
        let median = degrees[degrees.len() / 2];
        let mean = degrees.iter().sum::<usize>() as f64 / degrees.len() as f64;
        assert!((1..=5).contains(&median), "median out-degree {median}");
        assert!((3.0..15.0).contains(&mean), "mean out-degree {mean}");
    }

    #[test]
    fn tiny_graphs_work() {
        assert_eq!(build(spec(1, 1)).follows, vec![Vec::<usize>::new()]);
        let two = build(spec(2, 1));
        assert_eq!(two.follows, vec![vec![1], vec![0]]);
        assert!(build(spec(0, 1)).follows.is_empty());
    }
}
