package org.finetune.data;

import java.util.Locale;

/**
 * Resizing and Keras's preprocessing, in float32 as TensorFlow computes them, so that an image
 * fed from Java is the tensor Keras would have fed.
 */
public final class ImageOps {
  private ImageOps() {}

  /** Keras's {@code keras.applications.<family>.preprocess_input} modes. */
  public enum Preprocess {
    /** VGG16, ResNet50: RGB to BGR, then subtract the ImageNet mean per channel (BGR: 103.939, 116.779, 123.68). */
    CAFFE,
    /** InceptionV3, MobileNet: scale to [-1, 1] ({@code x / 127.5 - 1}). */
    TF,
    /** DenseNet: scale to [0, 1], subtract ImageNet's mean and divide by its standard deviation. */
    TORCH,
    /** Pixels as they are, 0..255. */
    NONE;

    public static Preprocess byName(String name) {
      try {
        return valueOf(name.toUpperCase(Locale.ROOT));
      } catch (IllegalArgumentException e) {
        throw new IllegalArgumentException("unknown preprocessing '" + name + "'; use caffe, tf, torch or none", e);
      }
    }
  }

  /**
   * {@code tf.image.resize(image, [height, width], method="bilinear", antialias=False)}: half-pixel
   * centres, float32 arithmetic, edge samples clamped.
   */
  public static float[] resizeBilinear(float[] src, int inH, int inW, int outH, int outW) {
    return resizeBilinear(src, inH, inW, outH, outW, 3);
  }

  /** {@link #resizeBilinear(float[], int, int, int, int)} of an image with {@code channels} samples per pixel. */
  public static float[] resizeBilinear(float[] src, int inH, int inW, int outH, int outW, int channels) {
    int n = channels;
    if (inH == outH && inW == outW) {
      return src.clone();
    }
    float scaleY = (float) inH / outH;
    float scaleX = (float) inW / outW;
    int[] x0 = new int[outW];
    int[] x1 = new int[outW];
    float[] xl = new float[outW];
    for (int x = 0; x < outW; x++) {
      float in = (x + 0.5f) * scaleX - 0.5f;
      float floor = (float) Math.floor(in);
      x0[x] = Math.max((int) floor, 0);
      x1[x] = Math.min((int) Math.ceil(in), inW - 1);
      xl[x] = in - floor;
    }
    float[] out = new float[outH * outW * n];
    for (int y = 0; y < outH; y++) {
      float in = (y + 0.5f) * scaleY - 0.5f;
      float floor = (float) Math.floor(in);
      int y0 = Math.max((int) floor, 0);
      int y1 = Math.min((int) Math.ceil(in), inH - 1);
      float yl = in - floor;
      for (int x = 0; x < outW; x++) {
        for (int c = 0; c < n; c++) {
          float tl = src[(y0 * inW + x0[x]) * n + c];
          float tr = src[(y0 * inW + x1[x]) * n + c];
          float bl = src[(y1 * inW + x0[x]) * n + c];
          float br = src[(y1 * inW + x1[x]) * n + c];
          float top = tl + (tr - tl) * xl[x];
          float bottom = bl + (br - bl) * xl[x];
          out[(y * outW + x) * n + c] = top + (bottom - top) * yl;
        }
      }
    }
    return out;
  }

  private static final float[] CAFFE_MEAN_BGR = {103.939f, 116.779f, 123.68f};
  private static final float[] TORCH_MEAN = {0.485f, 0.456f, 0.406f};
  private static final float[] TORCH_STD = {0.229f, 0.224f, 0.225f};

  /**
   * One grey sample per pixel from RGB samples (0..255), as TensorFlow decodes a colour image with
   * {@code channels=1} (Keras's {@code color_mode="grayscale"}): a pixel whose three samples are
   * equal keeps its value; any other gets libpng's RGB-to-grey with ITU-R BT.601 weights (0.299,
   * 0.587, 0.114) in its 15-bit fixed point, truncated as libpng does. (A colour JPEG decoded
   * so gives its luma plane, which this approximates: see the README.)
   */
  public static float[] grey(float[] rgb) {
    float[] out = new float[rgb.length / 3];
    for (int i = 0; i < out.length; i++) {
      float r = rgb[3 * i];
      float g = rgb[3 * i + 1];
      float b = rgb[3 * i + 2];
      if (r == g && g == b) {
        out[i] = r;
      } else {
        long sum = GREY_RED * Math.round(r) + GREY_GREEN * Math.round(g) + GREY_BLUE * Math.round(b);
        out[i] = (float) (sum >> 15);
      }
    }
    return out;
  }

  // libpng's png_set_rgb_to_gray(0.299, 0.587): coefficients out of 32768, blue the remainder.
  private static final long GREY_RED = 9797;
  private static final long GREY_GREEN = 19234;
  private static final long GREY_BLUE = 32768 - GREY_RED - GREY_GREEN;

  /**
   * Whether {@code mode} applies to images of {@code channels} samples per pixel: caffe and torch
   * subtract a mean per RGB channel, so they need 3.
   */
  public static boolean fits(Preprocess mode, int channels) {
    return channels == 3 || mode == Preprocess.TF || mode == Preprocess.NONE;
  }

  /** Applies {@code mode} in place to RGB samples (0..255) and returns them. */
  public static float[] preprocess(float[] rgb, Preprocess mode) {
    switch (mode) {
      case CAFFE:
        for (int i = 0; i < rgb.length; i += 3) {
          float r = rgb[i];
          float b = rgb[i + 2];
          rgb[i] = b - CAFFE_MEAN_BGR[0];
          rgb[i + 1] = rgb[i + 1] - CAFFE_MEAN_BGR[1];
          rgb[i + 2] = r - CAFFE_MEAN_BGR[2];
        }
        return rgb;
      case TF:
        for (int i = 0; i < rgb.length; i++) {
          rgb[i] = rgb[i] / 127.5f - 1f;
        }
        return rgb;
      case TORCH:
        for (int i = 0; i < rgb.length; i++) {
          rgb[i] = (rgb[i] / 255f - TORCH_MEAN[i % 3]) / TORCH_STD[i % 3];
        }
        return rgb;
      case NONE:
      default:
        return rgb;
    }
  }
}
