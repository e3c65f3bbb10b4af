package org.finetune.job;

import java.util.List;
import java.util.Optional;
import java.util.OptionalInt;
import org.finetune.hint.Setting;
import org.finetune.model.KerasSavedModel;
import org.finetune.savedmodel.SignatureInfo;
import org.finetune.savedmodel.TensorSpec;

/**
 * A model's image input, as its selected signature takes it: a batch of RGB or grey images
 * {@code [batch, height, width, 3 or 1]}, or for a video model a batch of clips
 * {@code [batch, frames, height, width, 3 or 1]}.
 *
 * @param input the signature's input key
 * @param height image height
 * @param width image width
 * @param frames frames per clip for a video model; 0 for an image model
 * @param channels 3 for RGB images, 1 for grey ones (decoded as Keras's
 *     {@code color_mode="grayscale"} decodes them)
 */
public record ImageInput(String input, int height, int width, int frames, int channels) {
  /**
   * Reads the image input of {@code model}'s selected signature.
   *
   * @param size the image size ({height, width}) for a model that takes any size; must fit the
   *     model's own where it has one
   * @throws JobException when the signature does not take one batch of RGB or grey images or clips, or
   *     the size is unknown or does not fit
   */
  public static ImageInput of(KerasSavedModel model, Optional<int[]> size) {
    SignatureInfo sig = model.info().selectedSignature();
    if (sig.inputs().size() != 1) {
      throw new JobException("an image model takes one input; signature " + sig.name() + " takes "
          + sig.inputs().stream().map(TensorSpec::key).toList(), Setting.MODEL, "");
    }
    TensorSpec in = sig.inputs().get(0);
    List<Long> shape = in.shape();
    int frames = 0;
    if (shape.size() == 5 && shape.get(1) > 1 && (shape.get(4) == 3 || shape.get(4) == 1)) {
      frames = (int) (long) shape.get(1);
      shape = shape.subList(1, 5);
    }
    if (!in.dtype().equals("float32") || shape.size() != 4 || (shape.get(3) != 3 && shape.get(3) != 1)) {
      throw new JobException("input '" + in.key() + "' is " + in.dtype() + " " + in.shape()
          + ", not a batch of RGB or grey images [batch, height, width, 3 or 1] (or of clips [batch, frames, height,"
          + " width, 3 or 1])", Setting.MODEL, "");
    }
    int channels = (int) (long) shape.get(3);
    int h = (int) (long) shape.get(1);
    int w = (int) (long) shape.get(2);
    if (size.isPresent()) {
      if ((h > 0 && h != size.get()[0]) || (w > 0 && w != size.get()[1])) {
        throw new JobException("the image size " + size.get()[0] + "x" + size.get()[1] + " does not fit the model's"
            + " input " + h + "x" + w, Setting.IMAGE_SIZE, "leave the size out or give " + h + "x" + w);
      }
      h = size.get()[0];
      w = size.get()[1];
    }
    if (h <= 0 || w <= 0) {
      throw new JobException("the model takes images of any size", Setting.IMAGE_SIZE, "give one");
    }
    return new ImageInput(in.key(), h, w, frames, channels);
  }

  /** The classes the signature's first output scores ({@code [batch, classes]}), when its shape says. */
  public static OptionalInt outputClasses(KerasSavedModel model) {
    List<TensorSpec> outputs = model.info().selectedSignature().outputs();
    if (outputs.isEmpty() || !outputs.get(0).rankKnown() || outputs.get(0).shape().size() != 2
        || outputs.get(0).shape().get(1) <= 0) {
      return OptionalInt.empty();
    }
    return OptionalInt.of((int) (long) outputs.get(0).shape().get(1));
  }
}
