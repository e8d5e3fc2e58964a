//! Stage geometry, with no browser in it: the columns and rows that give N tiles of one aspect
//! ratio the largest size in a given space, and which tiles a page of the stage shows.

/// Video tiles are 16:9, the shape cameras and screens send.
pub const TILE_ASPECT: f64 = 16.0 / 9.0;

/// Space between tiles and around the grid, in CSS pixels (the stylesheet's `--tile-gap`).
pub const TILE_GAP: f64 = 8.0;

/// Tiles per page on a phone, whatever the server allows on a desktop.
pub const PHONE_PAGE_SIZE: usize = 4;

/// Windows narrower than this (CSS pixels) are phones.
pub const PHONE_WIDTH: f64 = 600.0;

/// How N tiles are laid out: columns × rows, each tile `width` × `height` CSS pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Grid {
    pub columns: usize,
    pub rows: usize,
    pub width: f64,
    pub height: f64,
}

/// The grid whose tiles are largest for `count` tiles of `aspect` (width / height) in
/// `width` × `height` with `gap` between tiles. Ties go to fewer columns (taller stacks suit
/// narrow windows; wide windows never tie).
pub fn best_grid(count: usize, width: f64, height: f64, gap: f64, aspect: f64) -> Grid {
    let count = count.max(1);
    let mut best = Grid {
        columns: 1,
        rows: count,
        width: 0.0,
        height: 0.0,
    };
    for columns in 1..=count {
        let rows = count.div_ceil(columns);
        let cell_width = (width - gap * (columns - 1) as f64) / columns as f64;
        let cell_height = (height - gap * (rows - 1) as f64) / rows as f64;
        let tile_width = cell_width.min(cell_height * aspect).max(0.0);
        if tile_width > best.width + 0.01 {
            best = Grid {
                columns,
                rows,
                width: tile_width,
                height: tile_width / aspect,
            };
        }
    }
    best
}

/// Tiles per page: the server's page size on a desktop, fewer on a phone.
pub fn page_size(server_page_size: usize, window_width: f64) -> usize {
    let size = server_page_size.max(1);
    if window_width < PHONE_WIDTH {
        size.min(PHONE_PAGE_SIZE)
    } else {
        size
    }
}

/// One page of the stage: the tiles it shows, in order, and how many pages there are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Page<T> {
    pub shown: Vec<T>,
    /// The page shown, after clamping to the pages there are.
    pub index: usize,
    pub count: usize,
}

/// Splits `tiles` into pages of `size` and returns page `index` (clamped). The active
/// `speaker`, wherever the order puts them, is moved into the first page's last place, so
/// whoever is talking is seen without paging; everyone else keeps their order.
pub fn page<T: Copy + PartialEq>(
    tiles: &[T],
    size: usize,
    index: usize,
    speaker: Option<T>,
) -> Page<T> {
    let size = size.max(1);
    let mut ordered = tiles.to_vec();
    if let Some(at) = speaker.and_then(|s| ordered.iter().position(|t| *t == s)) {
        if at >= size {
            let speaker = ordered.remove(at);
            ordered.insert(size - 1, speaker);
        }
    }
    let count = ordered.len().div_ceil(size).max(1);
    let index = index.min(count - 1);
    let shown = ordered.into_iter().skip(index * size).take(size).collect();
    Page {
        shown,
        index,
        count,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The largest tile width any arrangement reaches, by trying every one: what the grid
    /// must come within 10 % of (the Playwright test holds the page to the same bound).
    fn best_width_by_search(count: usize, width: f64, height: f64) -> f64 {
        (1..=count)
            .map(|columns| {
                let rows = count.div_ceil(columns);
                let w = (width - TILE_GAP * (columns - 1) as f64) / columns as f64;
                let h = (height - TILE_GAP * (rows - 1) as f64) / rows as f64;
                w.min(h * TILE_ASPECT)
            })
            .fold(0.0, f64::max)
    }

    #[test]
    fn a_wide_stage_puts_few_tiles_side_by_side_and_many_in_a_square_ish_grid() {
        let grid = |n| best_grid(n, 1200.0, 600.0, TILE_GAP, TILE_ASPECT);
        assert_eq!((grid(1).columns, grid(1).rows), (1, 1));
        assert_eq!((grid(2).columns, grid(2).rows), (2, 1));
        assert_eq!((grid(4).columns, grid(4).rows), (2, 2));
        assert_eq!((grid(6).columns, grid(6).rows), (3, 2));
        assert_eq!((grid(9).columns, grid(9).rows), (3, 3));
        assert_eq!((grid(10).columns, grid(10).rows), (4, 3));
        // One tile fills the height of a wide stage and keeps 16:9.
        assert!((grid(1).height - 600.0).abs() < 0.01);
        assert!((grid(1).width / grid(1).height - TILE_ASPECT).abs() < 1e-9);
    }

    #[test]
    fn a_phone_stacks_tiles_in_one_column() {
        let grid = best_grid(2, 374.0, 640.0, TILE_GAP, TILE_ASPECT);
        assert_eq!((grid.columns, grid.rows), (1, 2));
        assert!((grid.width - 374.0).abs() < 0.01);
        let four = best_grid(4, 374.0, 640.0, TILE_GAP, TILE_ASPECT);
        assert_eq!(four.columns, 1);
    }

    #[test]
    fn the_chosen_grid_is_the_best_there_is_for_every_size_and_shape() {
        for (width, height) in [
            (1264.0, 560.0),
            (374.0, 640.0),
            (2544.0, 1300.0),
            (900.0, 900.0),
        ] {
            for count in 1..=25 {
                let grid = best_grid(count, width, height, TILE_GAP, TILE_ASPECT);
                assert!(grid.columns * grid.rows >= count);
                let best = best_width_by_search(count, width, height);
                assert!(
                    (grid.width - best).abs() < 0.02,
                    "{count} tiles in {width}x{height}"
                );
                // It fits.
                let used_width =
                    grid.width * grid.columns as f64 + TILE_GAP * (grid.columns - 1) as f64;
                let used_height =
                    grid.height * grid.rows as f64 + TILE_GAP * (grid.rows - 1) as f64;
                assert!(used_width <= width + 0.01 && used_height <= height + 0.01);
            }
        }
    }

    #[test]
    fn a_stage_with_no_room_yet_gives_empty_tiles_not_negative_ones() {
        let grid = best_grid(3, 0.0, 0.0, TILE_GAP, TILE_ASPECT);
        assert_eq!(grid.width, 0.0);
        assert_eq!(best_grid(0, 100.0, 100.0, TILE_GAP, TILE_ASPECT).rows, 1);
    }

    #[test]
    fn pages_hold_page_size_tiles_and_the_last_index_is_clamped() {
        let tiles: Vec<u32> = (0..20).collect();
        let first = page(&tiles, 9, 0, None);
        assert_eq!(first.shown, (0..9).collect::<Vec<_>>());
        assert_eq!(first.count, 3);
        let last = page(&tiles, 9, 7, None);
        assert_eq!((last.index, last.shown.clone()), (2, vec![18, 19]));
        assert_eq!(page(&[] as &[u32], 9, 3, None).count, 1);
        assert_eq!(page_size(9, 1280.0), 9);
        assert_eq!(page_size(9, 390.0), 4);
        assert_eq!(page_size(2, 390.0), 2);
        assert_eq!(page_size(0, 1280.0), 1);
    }

    #[test]
    fn the_active_speaker_is_brought_onto_the_first_page() {
        let tiles: Vec<u32> = (0..12).collect();
        let first = page(&tiles, 4, 0, Some(10));
        assert_eq!(first.shown, vec![0, 1, 2, 10]);
        // The one it displaced leads the next page; nobody is lost or shown twice.
        let second = page(&tiles, 4, 1, Some(10));
        assert_eq!(second.shown, vec![3, 4, 5, 6]);
        let all: Vec<u32> = (0..3)
            .flat_map(|i| page(&tiles, 4, i, Some(10)).shown)
            .collect();
        let mut sorted = all.clone();
        sorted.sort();
        assert_eq!(sorted, tiles);
        // A speaker already on the first page stays where they are.
        assert_eq!(page(&tiles, 4, 0, Some(1)).shown, vec![0, 1, 2, 3]);
    }
}
