package org.finetune.model;

import org.finetune.hint.BadSettingException;
import org.finetune.hint.Setting;
import org.tensorflow.Graph;
import org.tensorflow.Session;
import org.tensorflow.op.Ops;
import org.tensorflow.proto.ConfigProto;

/** What the linked TensorFlow runtime can run on, asked of the runtime itself. */
public final class Devices {
  private static Boolean cpuJitSet;

  private Devices() {}

  /**
   * True when the runtime can place an op on GPU {@code index}: the GPU build of the native is on
   * the classpath, CUDA 12 and cuDNN 9 load, and the device exists.
   */
  public static boolean gpuAvailable(int index) {
    try (Graph g = new Graph();
         Session s = new Session(g, ConfigProto.newBuilder().setAllowSoftPlacement(false)
             .setGpuOptions(org.tensorflow.proto.GPUOptions.newBuilder().setAllowGrowth(true)).build())) {
      Ops tf = Ops.create(g).withDevice(org.tensorflow.DeviceSpec.newBuilder()
          .deviceType(org.tensorflow.DeviceSpec.DeviceType.GPU).deviceIndex(index).build());
      var probe = tf.math.add(tf.constant(1f), tf.constant(1f));
      s.runner().fetch(probe).run().close();
      return true;
    } catch (RuntimeException e) {
      return false;
    }
  }

  /**
   * {@code options} with {@code auto} replaced by the device that will be used, after checking that
   * a requested GPU exists; switches on XLA's CPU JIT (a process-wide runtime flag) when asked.
   *
   * @throws IllegalArgumentException when a GPU is asked for and the runtime has none
   */
  public static RuntimeOptions resolve(RuntimeOptions options) {
    RuntimeOptions out = options;
    if (options.device().equals("auto")) {
      out = options.withDevice(gpuAvailable(0) ? "gpu" : "cpu");
    } else if (options.wantsGpu() && !gpuAvailable(options.gpuIndex())) {
      throw new BadSettingException("device " + options.device() + ": TensorFlow sees no such GPU (the GPU runtime"
          + " comes with the Maven profile -Pgpu and needs CUDA 12 and cuDNN 9 installed)", Setting.DEVICE,
          "without a GPU, run on device cpu");
    }
    if (out.xla() && out.device().equals("cpu")) {
      enableCpuJit();
    }
    return out;
  }

  private static synchronized void enableCpuJit() {
    if (cpuJitSet == null) {
      org.tensorflow.internal.c_api.global.tensorflow.TF_SetTfXlaCpuGlobalJit((byte) 1);
      cpuJitSet = Boolean.TRUE;
    }
  }
}
