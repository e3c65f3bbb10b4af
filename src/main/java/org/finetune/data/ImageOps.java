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
    float[] out = new float[outH * outW * 3];
    for (int y = 0; y < outH; y++) {
      float in = (y + 0.5f) * scaleY - 0.5f;
      float floor = (float) Math.floor(in);
      int y0 = Math.max((int) floor, 0);
      int y1 = Math.min((int) Math.ceil(in), inH - 1);
      float yl = in - floor;
      for (int x = 0; x < outW; x++) {
        for (int c = 0; c < 3; c++) {
          float tl = src[(y0 * inW + x0[x]) * 3 + c];
          float tr = src[(y0 * inW + x1[x]) * 3 + c];
          float bl = src[(y1 * inW + x0[x]) * 3 + c];
          float br = src[(y1 * inW + x1[x]) * 3 + c];
          float top = tl + (tr - tl) * xl[x];
          float bottom = bl + (br - bl) * xl[x];
          out[(y * outW + x) * 3 + c] = top + (bottom - top) * yl;
        }
      }
    }
    return out;
  }

  private static final float[] CAFFE_MEAN_BGR = {103.939f, 116.779f, 123.68f};
  private static final float[] TORCH_MEAN = {0.485f, 0.456f, 0.406f};
  private static final float[] TORCH_STD = {0.229f, 0.224f, 0.225f};

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
