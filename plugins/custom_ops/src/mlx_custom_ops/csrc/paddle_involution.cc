// Paddle custom operator `involution` (forward + backward) built by paddle.utils.cpp_extension.
// CPU kernels live in involution_cpu.h; CUDA kernels (paddle_involution.cu) are compiled in only
// when the build defines MLX_WITH_CUDA (a CUDA build of Paddle and nvcc were found).
#include <omp.h>

#include <string>
#include <vector>

#include "involution_cpu.h"
#include "paddle/extension.h"

using mlx_involution::Geometry;

#ifdef MLX_WITH_CUDA
std::vector<paddle::Tensor> involution_cuda_forward(const paddle::Tensor& x, const paddle::Tensor& w, int kernel_size,
                                                    int stride);
std::vector<paddle::Tensor> involution_cuda_backward(const paddle::Tensor& x, const paddle::Tensor& w,
                                                     const paddle::Tensor& gout, int kernel_size, int stride);
#endif

// OpenMP pragmas cannot sit inside the dispatch macro's argument, hence these two helpers.
template <typename T>
static void run_forward(const T* x, const T* w, T* out, const Geometry& g) {
  // One contiguous block of (batch, group) tasks per thread, so each thread allocates its scratch once.
  const int64_t tasks = g.B * g.G;
#pragma omp parallel
  {
    const int64_t n = omp_get_num_threads(), id = omp_get_thread_num();
    const int64_t begin = tasks * id / n, end = tasks * (id + 1) / n;
    if (begin < end) mlx_involution::forward_range(x, w, out, g, begin, end);
  }
}

template <typename T>
static void run_backward(const T* gout, const T* x, const T* w, T* gx, T* gw, const Geometry& g) {
  // One contiguous block of (batch, group) tasks per thread, so each thread allocates its scratch once.
  const int64_t tasks = g.B * g.G;
#pragma omp parallel
  {
    const int64_t n = omp_get_num_threads(), id = omp_get_thread_num();
    const int64_t begin = tasks * id / n, end = tasks * (id + 1) / n;
    if (begin < end) mlx_involution::backward_range(gout, x, w, gx, gw, g, begin, end);
  }
}

static Geometry geometry(const paddle::Tensor& x, const paddle::Tensor& w, int kernel_size, int stride) {
  PD_CHECK(x.shape().size() == 4, "involution: x must be 4-D [B, C, H, W]");
  PD_CHECK(w.shape().size() == 5, "involution: weight must be 5-D [B, G, K*K, Ho, Wo]");
  Geometry g;
  g.B = x.shape()[0];
  g.C = x.shape()[1];
  g.H = x.shape()[2];
  g.W = x.shape()[3];
  g.G = w.shape()[1];
  g.K = kernel_size;
  g.S = stride;
  g.P = (kernel_size - 1) / 2;
  g.Ho = w.shape()[3];
  g.Wo = w.shape()[4];
  PD_CHECK(w.shape()[0] == g.B, "involution: x and weight batch sizes differ");
  std::string err = mlx_involution::check_geometry(g.C, g.H, g.W, g.G, g.K, g.S, w.shape()[2], g.Ho, g.Wo);
  PD_CHECK(err.empty(), "involution: ", err);
  return g;
}

std::vector<paddle::Tensor> InvolutionForward(const paddle::Tensor& x, const paddle::Tensor& w, int kernel_size,
                                              int stride) {
  const Geometry g = geometry(x, w, kernel_size, stride);
#ifdef MLX_WITH_CUDA
  if (x.is_gpu()) return involution_cuda_forward(x.contiguous(), w.contiguous(), kernel_size, stride);
#endif
  PD_CHECK(x.is_cpu(), "involution: this build has CPU kernels only");
  auto xc = x.contiguous();
  auto wc = w.contiguous();
  auto out = paddle::empty({g.B, g.C, g.Ho, g.Wo}, x.dtype(), x.place());
  PD_DISPATCH_FLOATING_TYPES(x.type(), "involution_forward", ([&] {
                               run_forward<data_t>(xc.data<data_t>(), wc.data<data_t>(), out.data<data_t>(), g);
                             }));
  return {out};
}

std::vector<paddle::Tensor> InvolutionBackward(const paddle::Tensor& x, const paddle::Tensor& w,
                                               const paddle::Tensor& gout, int kernel_size, int stride) {
  const Geometry g = geometry(x, w, kernel_size, stride);
#ifdef MLX_WITH_CUDA
  if (x.is_gpu()) return involution_cuda_backward(x.contiguous(), w.contiguous(), gout.contiguous(), kernel_size, stride);
#endif
  auto xc = x.contiguous();
  auto wc = w.contiguous();
  auto goc = gout.contiguous();
  auto gx = mlx_involution::needs_zeroed_grad_x(g) ? paddle::full(x.shape(), 0, x.dtype(), x.place())
                                                    : paddle::empty(x.shape(), x.dtype(), x.place());
  auto gw = paddle::empty(w.shape(), w.dtype(), w.place());
  PD_DISPATCH_FLOATING_TYPES(x.type(), "involution_backward", ([&] {
                               run_backward<data_t>(goc.data<data_t>(), xc.data<data_t>(), wc.data<data_t>(),
                                                    gx.data<data_t>(), gw.data<data_t>(), g);
                             }));
  return {gx, gw};
}

std::vector<std::vector<int64_t>> InvolutionInferShape(const std::vector<int64_t>& x_shape,
                                                       const std::vector<int64_t>& w_shape, int kernel_size,
                                                       int stride) {
  return {{x_shape[0], x_shape[1], w_shape[3], w_shape[4]}};
}

std::vector<paddle::DataType> InvolutionInferDtype(const paddle::DataType& x_dtype, const paddle::DataType& w_dtype) {
  return {x_dtype};
}

PD_BUILD_OP(involution)
    .Inputs({"X", "W"})
    .Outputs({"Out"})
    .Attrs({"kernel_size: int", "stride: int"})
    .SetKernelFn(PD_KERNEL(InvolutionForward))
    .SetInferShapeFn(PD_INFER_SHAPE(InvolutionInferShape))
    .SetInferDtypeFn(PD_INFER_DTYPE(InvolutionInferDtype));

PD_BUILD_GRAD_OP(involution)
    .Inputs({"X", "W", paddle::Grad("Out")})
    .Outputs({paddle::Grad("X"), paddle::Grad("W")})
    .Attrs({"kernel_size: int", "stride: int"})
    .SetKernelFn(PD_KERNEL(InvolutionBackward));
