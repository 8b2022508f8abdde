// Bindings: recorded programs (program.h). fastnn/program.py records kernel calls and hands them
// here as buffers and instructions; run() replays them with the GIL released. A program keeps a
// reference to every array it points into, so they outlive it.
#include "bindings.h"
#include "program.h"

#include <cstring>
#include <memory>
#include <string>

namespace fastnn {
namespace bind {
namespace {

class PyProgram {
public:
    explicit PyProgram(const std::string& dtype) {
        if (dtype == "float32") f32_ = std::make_unique<Program<float>>();
        else if (dtype == "float64") f64_ = std::make_unique<Program<double>>();
        else throw py::value_error("a program's dtype must be float32 or float64, got " + dtype);
    }

    // A buffer of `type` (0 real, 1 int64 labels, 2 uint64 stream) and shape (a*n + b, cols):
    // internal (array None, slot -1), an alias of buffer `alias`, a fixed external array, or the
    // input `slot` of each run.
    int add_buffer(int type, std::int64_t a, std::int64_t b, py::ssize_t cols, int alias,
                   py::object array, int slot) {
        Buffer buf;
        buf.type = BufType(type);
        buf.rows = {a, b};
        buf.cols = cols;
        buf.alias = alias;
        if (!array.is_none()) {
            py::array arr = py::reinterpret_borrow<py::array>(array);
            if (!(arr.flags() & py::array::c_style) || !arr.writeable())
                throw py::value_error("a program's arrays must be C-contiguous and writeable");
            const py::ssize_t itemsize = type == 0 ? (f32_ ? 4 : 8) : 8;
            if (arr.itemsize() != itemsize || py::ssize_t(a) != 0 || arr.size() != b * cols)
                throw py::value_error("array of shape " + shape_of(arr) + " and dtype " +
                                      dtype_name(arr) + " does not fit its program buffer");
            buf.external = true;
            buf.data = arr.mutable_data();
            keep_.append(arr);
        }
        if (slot >= 0) {
            buf.external = true;
            if (int(slots_.size()) <= slot) slots_.resize(slot + 1, -1);
            slots_[slot] = int(buffers().size());
        }
        buffers().push_back(buf);
        return int(buffers().size()) - 1;
    }

    // An instruction: kernel id and its arguments, each (kind, id, value) as in Arg.
    void add_instr(int kernel, const std::vector<std::tuple<int, int, double>>& args, int result,
                   int cond) {
        if (kernel < 0 || kernel >= int(kernel_specs().size()))
            throw py::value_error("unknown kernel id " + std::to_string(kernel));
        Instr in;
        in.kernel = Kernel(kernel);
        for (const auto& [kind, id, value] : args) in.args.push_back({Arg::Kind(kind), id, value});
        in.result = result;
        in.cond = cond;
        if (f32_) f32_->code.push_back(in); else f64_->code.push_back(in);
    }

    // Replays the program for n rows with inputs[k] as input slot k and `registers` as the first
    // registers; returns the registers named in `results`. With an `out` array, the first n rows
    // of buffer `copy` are copied into it (a prediction written straight into the caller's array).
    std::vector<double> run(py::ssize_t n, const std::vector<py::array>& inputs,
                            std::vector<double> registers, int count, const std::vector<int>& results,
                            int copy, py::object out) {
        if (inputs.size() != slots_.size())
            throw py::value_error("program expects " + std::to_string(slots_.size()) + " inputs, got " +
                                  std::to_string(inputs.size()));
        for (size_t k = 0; k < inputs.size(); ++k)
            buffers()[slots_[k]].data = const_cast<void*>(inputs[k].data());
        registers.resize(std::max<size_t>(registers.size(), size_t(count)), 0.0);
        void* dst = nullptr;
        size_t bytes = 0;
        if (!out.is_none()) {
            py::array a = py::reinterpret_borrow<py::array>(out);
            const Buffer& b = buffers()[copy];
            bytes = size_t(b.rows.at(n) * b.cols) * (f32_ ? 4 : 8);
            if (!a.writeable() || !(a.flags() & py::array::c_style) || size_t(a.nbytes()) != bytes)
                throw py::value_error("out must be a writeable C-contiguous array of " +
                                      std::to_string(bytes) + " bytes, got " + shape_of(a));
            dst = a.mutable_data();
        }
        apply_thread_setting();
        {
            release_gil nogil;
            const std::size_t limit = program_cache_limit();
            // Buffers grown past the cache limit by an earlier, larger batch are freed before a
            // run that needs less (the earlier run's views are valid only until this run).
            if (storage_bytes() > limit && bytes_for(n) < storage_bytes()) release_storage();
            if (f32_) f32_->run(n, registers); else f64_->run(n, registers);
            if (dst && bytes) std::memcpy(dst, f32_ ? f32_->data(copy) : f64_->data(copy), bytes);
            if (dst && storage_bytes() > limit) release_storage();  // a prediction keeps no view
        }
        for (size_t k = 0; k < inputs.size(); ++k) buffers()[slots_[k]].data = nullptr;
        std::vector<double> picked;
        picked.reserve(results.size());
        for (int r : results) picked.push_back(registers[r]);
        return picked;
    }

    // The inference fast path: one input (slot 0) of x.shape[0] rows, buffer `copy` copied into out.
    void infer(const py::array& x, int copy, py::array out) {
        if (slots_.size() != 1) throw py::value_error("infer needs a program of one input");
        run(x.ndim() ? x.shape(0) : 0, {x}, {}, 0, {}, copy, out);
    }

    // The thread count its runs of n rows use now (threads.h); 0 before the first run of n.
    int chosen_threads(py::ssize_t n) const { return f32_ ? f32_->chosen_threads(n) : f64_->chosen_threads(n); }

    // The first n rows of buffer `id` (after a run) as an array that keeps this program alive.
    py::array view(py::object self, int id, py::ssize_t n, std::vector<py::ssize_t> shape) {
        void* data = f32_ ? f32_->data(id) : f64_->data(id);
        shape.insert(shape.begin(), n);
        py::dtype dt = f32_ ? py::dtype::of<float>() : py::dtype::of<double>();
        return py::array(dt, shape, {}, data, self);
    }

    std::size_t storage_bytes() const { return f32_ ? f32_->storage_bytes() : f64_->storage_bytes(); }
    std::size_t bytes_for(py::ssize_t n) const { return f32_ ? f32_->bytes_for(n) : f64_->bytes_for(n); }
    void release_storage() { if (f32_) f32_->release(); else f64_->release(); }

private:
    std::vector<Buffer>& buffers() { return f32_ ? f32_->buffers : f64_->buffers; }
    std::unique_ptr<Program<float>> f32_;
    std::unique_ptr<Program<double>> f64_;
    std::vector<int> slots_;
    py::list keep_;
};

}  // namespace

void bind_program(py::module_& m) {
    py::class_<PyProgram>(m, "Program", "A recorded program of kernel calls (fastnn/program.py).")
        .def(py::init<const std::string&>(), "dtype"_a)
        .def("add_buffer", &PyProgram::add_buffer, "type"_a, "a"_a, "b"_a, "cols"_a, "alias"_a,
             "array"_a, "slot"_a)
        .def("add_instr", &PyProgram::add_instr, "kernel"_a, "args"_a, "result"_a, "cond"_a)
        .def("run", &PyProgram::run, "n"_a, "inputs"_a, "registers"_a, "count"_a, "results"_a,
             "copy"_a = -1, "out"_a = py::none())
        .def("infer", &PyProgram::infer, "x"_a, "copy"_a, "out"_a)
        .def("chosen_threads", &PyProgram::chosen_threads, "n"_a)
        .def("storage_bytes", &PyProgram::storage_bytes,
             "Bytes of internal buffers the program holds now.")
        .def("release", &PyProgram::release_storage,
             "Free the internal buffers (views of the last run become invalid).")
        .def("view", [](py::object self, int id, py::ssize_t n, std::vector<py::ssize_t> shape) {
            return self.cast<PyProgram&>().view(self, id, n, std::move(shape));
        }, "id"_a, "n"_a, "shape"_a);
    py::list specs;
    for (const auto& s : kernel_specs()) specs.append(py::make_tuple(s.name, s.params, s.results));
    m.attr("program_kernels") = specs;
    m.attr("activation_names") = py::cast(activation_names());
    m.def("program_cache_limit", &program_cache_limit,
          "Bytes of internal buffers a recorded program keeps between runs.");
    m.def("set_program_cache_limit", &set_program_cache_limit, "bytes"_a,
          "Set the bytes of internal buffers a recorded program keeps between runs.");
}

}  // namespace bind
}  // namespace fastnn
