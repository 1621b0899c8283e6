//! Groups rows into write requests: rows of one partition go together into an UNLOGGED batch
//! (one replica set, one mutation), capped in rows and estimated bytes so a batch stays under
//! Cassandra's `batch_size_warn_threshold`. A batch never spans partitions: multi-partition
//! batches make the coordinator fan out and are the classic "batch too large" trap.

use std::collections::HashMap;

use crate::config::BatchConfig;
use crate::mapping::MappedRow;

/// Splits `rows` into groups of indices; each group is one partition, within the caps.
/// A single row larger than `max_bytes` still forms its own group.
pub fn plan_batches(rows: &[&MappedRow], caps: &BatchConfig) -> Vec<Vec<usize>> {
    let mut by_partition: HashMap<&[u8], usize> = HashMap::with_capacity(rows.len());
    let mut partitions: Vec<Vec<usize>> = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let slot = *by_partition
            .entry(row.partition.as_slice())
            .or_insert_with(|| {
                partitions.push(Vec::new());
                partitions.len() - 1
            });
        partitions[slot].push(i);
    }
    let mut batches = Vec::with_capacity(partitions.len());
    for partition in partitions {
        let mut current: Vec<usize> = Vec::new();
        let mut bytes = 0;
        for i in partition {
            let size = rows[i].approx_bytes;
            let full = current.len() >= caps.max_rows || bytes + size > caps.max_bytes;
            if !current.is_empty() && full {
                batches.push(std::mem::take(&mut current));
                bytes = 0;
            }
            bytes += size;
            current.push(i);
        }
        if !current.is_empty() {
            batches.push(current);
        }
    }
    batches
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(partition: &str, bytes: usize) -> MappedRow {
        MappedRow {
            values: Vec::new(),
            partition: partition.as_bytes().to_vec(),
            approx_bytes: bytes,
        }
    }

    fn caps(max_rows: usize, max_bytes: usize) -> BatchConfig {
        BatchConfig {
            max_rows,
            max_bytes,
        }
    }

    #[test]
    fn never_mixes_partitions() {
        let rows = [
            row("a", 10),
            row("b", 10),
            row("a", 10),
            row("c", 10),
            row("b", 10),
        ];
        let refs: Vec<&MappedRow> = rows.iter().collect();
        let batches = plan_batches(&refs, &caps(32, 4096));
        assert_eq!(batches, vec![vec![0, 2], vec![1, 4], vec![3]]);
        for batch in &batches {
            let first = &rows[batch[0]].partition;
            assert!(batch.iter().all(|&i| &rows[i].partition == first));
        }
    }

    #[test]
    fn caps_rows_and_bytes() {
        let rows: Vec<MappedRow> = (0..10).map(|_| row("a", 100)).collect();
        let refs: Vec<&MappedRow> = rows.iter().collect();
        let by_rows = plan_batches(&refs, &caps(4, 1_000_000));
        assert_eq!(
            by_rows.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![4, 4, 2]
        );
        let by_bytes = plan_batches(&refs, &caps(100, 350));
        assert_eq!(
            by_bytes.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![3, 3, 3, 1]
        );
    }

    #[test]
    fn an_oversized_row_stands_alone() {
        let rows = [row("a", 10), row("a", 9000), row("a", 10)];
        let refs: Vec<&MappedRow> = rows.iter().collect();
        let batches = plan_batches(&refs, &caps(32, 4096));
        assert_eq!(batches, vec![vec![0], vec![1], vec![2]]);
    }
}
