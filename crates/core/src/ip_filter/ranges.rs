//! Address sets as sorted, disjoint, non-adjacent inclusive ranges: a lookup is one binary
//! search however many entries were configured (a service tag holds thousands of prefixes),
//! and the same ranges give back the fewest CIDR prefixes that cover them.

/// An address as an unsigned number: `u32` for IPv4, `u128` for IPv6.
pub(crate) trait AddressBits: Copy + Ord {
    const BITS: u32;
    fn widen(self) -> u128;
    /// Only called with values that came from `widen` of the same type, or lie between two.
    fn narrow(value: u128) -> Self;
}

impl AddressBits for u32 {
    const BITS: u32 = 32;
    fn widen(self) -> u128 {
        u128::from(self)
    }
    fn narrow(value: u128) -> Self {
        u32::try_from(value).unwrap_or(u32::MAX)
    }
}

impl AddressBits for u128 {
    const BITS: u32 = 128;
    fn widen(self) -> u128 {
        self
    }
    fn narrow(value: u128) -> Self {
        value
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RangeSet<T> {
    /// Inclusive `(first, last)` in address order; each starts at least two past the last of
    /// the one before (overlapping and adjacent ranges are merged).
    ranges: Vec<(T, T)>,
}

impl<T: AddressBits> RangeSet<T> {
    /// The union of `ranges` (each inclusive, `first <= last`), in any order.
    pub(crate) fn new(ranges: Vec<(T, T)>) -> Self {
        // Sorted as u128 for both families: one copy of the sort in the module (~5 KB each).
        let mut wide: Vec<(u128, u128)> = ranges
            .into_iter()
            .map(|(first, last)| (first.widen(), last.widen()))
            .collect();
        wide.sort_unstable();
        let mut merged: Vec<(T, T)> = Vec::with_capacity(wide.len());
        for (first, last) in wide {
            let (first, last) = (T::narrow(first), T::narrow(last));
            match merged.last_mut() {
                Some(previous) if reaches(previous.1, first) => {
                    previous.1 = previous.1.max(last);
                }
                _ => merged.push((first, last)),
            }
        }
        merged.shrink_to_fit();
        Self { ranges: merged }
    }

    pub(crate) fn contains(&self, address: T) -> bool {
        // Only the last range starting at or before the address can hold it.
        let starting_after = self.ranges.partition_point(|&(first, _)| first <= address);
        starting_after
            .checked_sub(1)
            .and_then(|index| self.ranges.get(index))
            .is_some_and(|&(_, last)| address <= last)
    }

    #[cfg(test)]
    pub(crate) fn ranges(&self) -> &[(T, T)] {
        &self.ranges
    }

    /// The fewest CIDR prefixes that cover exactly the set, in address order, as
    /// `(network, prefix length)`.
    pub(crate) fn prefixes(&self) -> Vec<(T, u8)> {
        let mut prefixes = Vec::new();
        for &(first, last) in &self.ranges {
            split_into_prefixes(
                first.widen(),
                last.widen(),
                T::BITS,
                &mut |network, length| {
                    prefixes.push((T::narrow(network), length));
                },
            );
        }
        prefixes
    }
}

/// Whether a range starting at `first` overlaps or touches one that ends at `last`.
fn reaches<T: AddressBits>(last: T, first: T) -> bool {
    last.widen()
        .checked_add(1)
        .is_none_or(|next| first.widen() <= next)
}

/// The fewest aligned blocks that tile `first..=last`: from the left, each time the largest
/// block that starts there (bounded by the start's alignment) and ends within the range.
fn split_into_prefixes(first: u128, last: u128, bits: u32, emit: &mut impl FnMut(u128, u8)) {
    let mut start = first;
    // At most two blocks per bit of the address: the loop ends whatever the input.
    for _ in 0..=2 * bits {
        let alignment = if start == 0 {
            bits
        } else {
            start.trailing_zeros().min(bits)
        };
        // The largest power of two not above the number of addresses left.
        let fits = (last - start).checked_add(1).map_or(128, u128::ilog2);
        let block_bits = alignment.min(fits);
        emit(start, u8::try_from(bits - block_bits).unwrap_or(0));
        let block_last = start | low_mask(block_bits);
        if block_last >= last {
            return;
        }
        start = block_last + 1;
    }
}

/// A number whose lowest `bits` bits are set.
pub(crate) fn low_mask(bits: u32) -> u128 {
    u128::MAX.checked_shr(128 - bits).unwrap_or(0)
}
