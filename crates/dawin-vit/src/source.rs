//! Decoded-image sources that plug into [`ImageDataset`](crate::ImageDataset), and the image-level
//! border crop some benchmarks apply before CLIP's resize.
//!
//! An [`ImageSource`] yields sample `i` as an 8-bit RGB image; the dataset then runs CLIP's
//! transform on it ([`preprocess_rgb`]). Two sources ship with the crate: [`FileSource`] (a list of
//! JPEG/PNG files, optionally cropped: the benchmark folders of
//! [`benchmarks`](crate::benchmarks)) and [`WebDataset`](crate::webdataset::WebDataset) (`.tar`
//! shards read in place).
//!
//! The crop runs on the decoded RGB image, before the resize, as the reference pipelines do it on
//! the PIL image: ObjectNet's evaluation in WiSE-FT (`src/datasets/objectnet.py`) composes
//! `img.crop((2, 2, width - 2, height - 2))` in front of CLIP's preprocess ([`Crop::OBJECTNET`]).

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::preprocess::{decode_image, load_image, preprocess_rgb, Preprocessor, RgbImage};

/// A source of decoded RGB images, one per sample, for
/// [`ImageDataset::from_source`](crate::ImageDataset::from_source). Implementations are read from
/// several threads at once (`load_batch` is parallel), so `load_rgb` takes `&self`.
pub trait ImageSource: Send + Sync + std::fmt::Debug {
    /// Number of samples.
    fn len(&self) -> usize;
    /// True when there is no sample.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// How errors and reports name sample `i` (a file path, or `shard.tar:key`).
    fn sample_name(&self, i: usize) -> String;
    /// Decodes sample `i` (crop included) to RGB. Errors name the sample.
    fn load_rgb(&self, i: usize) -> Result<RgbImage>;
    /// Decodes sample `i` and writes CLIP's transform at side `size` into `out`
    /// (`[3, size, size]`) with the caller's [`Preprocessor`] (one per worker thread, so that
    /// buffers and the JPEG decoder are reused). The default runs [`load_rgb`](Self::load_rgb)
    /// then [`Preprocessor::preprocess_rgb`]; sources without a crop override it to decode
    /// straight into the preprocessor's buffers. Same values either way. Errors name the sample.
    fn preprocess_into(
        &self,
        i: usize,
        pre: &mut Preprocessor,
        size: usize,
        out: &mut [f32],
    ) -> Result<()> {
        pre.preprocess_rgb(&self.load_rgb(i)?, size, out)
    }
}

/// An image-level crop applied to the decoded RGB image before CLIP's resize.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Crop {
    /// The image as decoded.
    #[default]
    None,
    /// Drop `left`, `top`, `right`, `bottom` pixels from the sides: PIL's
    /// `img.crop((left, top, width - right, height - bottom))`, giving a
    /// `(width − left − right) × (height − top − bottom)` image.
    Border {
        /// Pixels dropped on the left.
        left: usize,
        /// Pixels dropped on top.
        top: usize,
        /// Pixels dropped on the right.
        right: usize,
        /// Pixels dropped at the bottom.
        bottom: usize,
    },
}

impl Crop {
    /// ObjectNet's border crop: 2 pixels on every side, as WiSE-FT's `objectnet.py` `crop` does
    /// (`img.crop((2, 2, width - 2, height - 2))`) before the model's preprocess.
    pub const OBJECTNET: Crop = Crop::Border {
        left: 2,
        top: 2,
        right: 2,
        bottom: 2,
    };

    /// Applies the crop. Errors (a message; callers add the file) when the image is not larger
    /// than the border: PIL would fail on the box too.
    pub fn apply(self, img: RgbImage) -> std::result::Result<RgbImage, String> {
        let Crop::Border {
            left,
            top,
            right,
            bottom,
        } = self
        else {
            return Ok(img);
        };
        let (w, h) = (img.width, img.height);
        if left + right >= w || top + bottom >= h {
            return Err(format!(
                "image is {w}×{h}, too small for the border crop ({})",
                self.describe()
            ));
        }
        let (nw, nh) = (w - left - right, h - top - bottom);
        let mut pixels = Vec::with_capacity(nw * nh * 3);
        for y in top..top + nh {
            let row = (y * w + left) * 3;
            pixels.extend_from_slice(&img.pixels[row..row + nw * 3]);
        }
        Ok(RgbImage {
            width: nw,
            height: nh,
            pixels,
        })
    }

    /// What the crop does, for reports: `none` or `border crop left 2, top 2, right 2, bottom 2
    /// px (PIL img.crop((2, 2, w-2, h-2)))`.
    pub fn describe(&self) -> String {
        match *self {
            Crop::None => "none".to_string(),
            Crop::Border {
                left,
                top,
                right,
                bottom,
            } => format!(
                "border crop left {left}, top {top}, right {right}, bottom {bottom} px before the \
                 resize (PIL img.crop(({left}, {top}, w-{right}, h-{bottom})))"
            ),
        }
    }
}

/// Decodes an image file to RGB and applies `crop`; errors name the file.
pub fn load_image_cropped(path: impl AsRef<Path>, crop: Crop) -> Result<RgbImage> {
    let path = path.as_ref();
    let img = load_image(path)?;
    crop.apply(img).map_err(|msg| Error::Image {
        path: path.to_path_buf(),
        msg,
    })
}

/// Decodes JPEG/PNG bytes, applies `crop`, then runs CLIP's transform ([`preprocess_rgb`]) into
/// `out` (`[3, size, size]`). The error of decoding or cropping is a message naming nothing
/// (callers add the file or shard and key).
pub fn preprocess_bytes_cropped(
    bytes: &[u8],
    crop: Crop,
    size: usize,
    out: &mut [f32],
) -> std::result::Result<(), String> {
    let img = crop.apply(decode_image(bytes)?)?;
    preprocess_rgb(&img, size, out).map_err(|e| e.to_string())
}

/// Loads an image file, applies `crop`, then CLIP's transform: a new `[3, size, size]` buffer.
pub fn preprocess_file_cropped(
    path: impl AsRef<Path>,
    crop: Crop,
    size: usize,
) -> Result<Vec<f32>> {
    let img = load_image_cropped(path, crop)?;
    let mut out = vec![0.0; 3 * size * size];
    preprocess_rgb(&img, size, &mut out)?;
    Ok(out)
}

/// Image files, one per sample, decoded with [`load_image`] and cropped with a [`Crop`].
#[derive(Clone, Debug)]
pub struct FileSource {
    files: Vec<PathBuf>,
    crop: Crop,
}

impl FileSource {
    /// `files` in sample order, each cropped with `crop` after decoding.
    pub fn new(files: Vec<PathBuf>, crop: Crop) -> Self {
        FileSource { files, crop }
    }

    /// The files, in sample order.
    pub fn files(&self) -> &[PathBuf] {
        &self.files
    }

    /// The crop applied after decoding.
    pub fn crop(&self) -> Crop {
        self.crop
    }
}

impl ImageSource for FileSource {
    fn len(&self) -> usize {
        self.files.len()
    }
    fn sample_name(&self, i: usize) -> String {
        self.files[i].display().to_string()
    }
    fn load_rgb(&self, i: usize) -> Result<RgbImage> {
        let path = self.files.get(i).ok_or_else(|| {
            Error::arg(
                "index",
                format!("{i} is out of range for {} files", self.files.len()),
            )
        })?;
        load_image_cropped(path, self.crop)
    }
    fn preprocess_into(
        &self,
        i: usize,
        pre: &mut Preprocessor,
        size: usize,
        out: &mut [f32],
    ) -> Result<()> {
        match self.crop {
            Crop::None => {
                let path = self.files.get(i).ok_or_else(|| {
                    Error::arg(
                        "index",
                        format!("{i} is out of range for {} files", self.files.len()),
                    )
                })?;
                pre.preprocess_file(path, size, out)
            }
            _ => pre.preprocess_rgb(&self.load_rgb(i)?, size, out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn border_crop_keeps_the_inner_pixels() {
        // 6×5 image, pixel (x, y) = [x, y, 10x + y].
        let px: Vec<u8> = (0..5)
            .flat_map(|y| (0..6).flat_map(move |x| [x as u8, y as u8, (10 * x + y) as u8]))
            .collect();
        let img = RgbImage::new(6, 5, px).unwrap();
        let c = Crop::Border {
            left: 1,
            top: 2,
            right: 2,
            bottom: 1,
        };
        let out = c.apply(img.clone()).unwrap();
        assert_eq!((out.width, out.height), (3, 2));
        // Rows y = 2, 3; columns x = 1, 2, 3.
        let want: Vec<u8> = [2u8, 3]
            .iter()
            .flat_map(|&y| [1u8, 2, 3].into_iter().map(move |x| [x, y, 10 * x + y]))
            .flatten()
            .collect();
        assert_eq!(out.pixels, want);
        assert_eq!(Crop::None.apply(img.clone()).unwrap(), img);
        let err = Crop::OBJECTNET
            .apply(RgbImage::new(4, 9, vec![0; 108]).unwrap())
            .unwrap_err();
        assert!(err.contains("4×9") && err.contains("too small"), "{err}");
    }
}
