//! A task-local storage map (`BPF_MAP_TYPE_TASK_STORAGE`): a value that lives on
//! the `task_struct` itself. Reaching it is a pointer walk instead of a hash
//! lookup, and it is freed with the task, so nothing needs cleaning up.
//!
//! aya-ebpf 0.2 has no wrapper for this map type, and the one it uses for its
//! sibling storage maps is crate-private, so this mirrors that BTF map definition:
//! the loader reads the map's type, key, value and flags from these fields' BTF.

use core::{ffi::c_void, ptr};

use aya_ebpf::{
    bindings::{
        BPF_F_NO_PREALLOC, BPF_LOCAL_STORAGE_GET_F_CREATE, bpf_map_type::BPF_MAP_TYPE_TASK_STORAGE,
    },
    helpers::generated::bpf_task_storage_get,
};

#[repr(C)]
pub struct TaskStorage<T> {
    r#type: *const [i32; BPF_MAP_TYPE_TASK_STORAGE as usize],
    key: *const i32,
    value: *const T,
    max_entries: *const [i32; 0],
    map_flags: *const [i32; BPF_F_NO_PREALLOC as usize],
}

// SAFETY: the fields are BTF placeholders the loader patches; never dereferenced.
unsafe impl<T> Sync for TaskStorage<T> {}

impl<T> TaskStorage<T> {
    pub const fn new() -> Self {
        TaskStorage {
            r#type: ptr::null(),
            key: ptr::null(),
            value: ptr::null(),
            max_entries: ptr::null(),
            map_flags: ptr::null(),
        }
    }

    /// The task's value, if it has one. `task` must be a BTF-typed task pointer.
    #[inline(always)]
    pub fn get(&self, task: *const u8) -> Option<*mut T> {
        self.storage(task, 0)
    }

    /// The task's value, created zeroed if missing; `None` if the kernel could not
    /// allocate it (or refused re-entry from a nested program).
    #[inline(always)]
    pub fn get_or_create(&self, task: *const u8) -> Option<*mut T> {
        self.storage(task, BPF_LOCAL_STORAGE_GET_F_CREATE as u64)
    }

    #[inline(always)]
    fn storage(&self, task: *const u8, flags: u64) -> Option<*mut T> {
        let map = ptr::from_ref(self).cast_mut().cast::<c_void>();
        let v =
            unsafe { bpf_task_storage_get(map, task.cast_mut().cast(), ptr::null_mut(), flags) };
        (!v.is_null()).then_some(v.cast::<T>())
    }
}
