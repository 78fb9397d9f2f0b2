using Net.Pkcs11Interop.Common;
using Net.Pkcs11Interop.HighLevelAPI;

namespace ManagedDisks.Keys.Pkcs11;

/// <summary>
/// A PKCS#11 library loaded once per process. C_Initialize may be called once per process
/// (a second call fails with CKR_CRYPTOKI_ALREADY_INITIALIZED) and C_Finalize ends every
/// caller's sessions, so stores on the same module share this object, counted: the last store
/// closed finalizes it. The daemon opens stores for one piece of work at a time, so a token
/// inserted (or a SoftHSM2 token created) since is seen at the next C_Initialize.
/// </summary>
internal sealed class Pkcs11Module
{
    private static readonly Dictionary<string, Pkcs11Module> Loaded = new(StringComparer.Ordinal);
    private static readonly object Gate = new();

    private int _users;

    static Pkcs11Module()
    {
        // Pkcs11Interop 5.3 dlopens through [DllImport("libdl")], a name only the development
        // package provides (libdl.so); glibc 2.34+ has dlopen in libc itself and ships only
        // libdl.so.2. Resolve the name for that assembly alone.
        System.Runtime.InteropServices.NativeLibrary.SetDllImportResolver(typeof(Pkcs11InteropFactories).Assembly, (name, assembly, searchPath) =>
            name == "libdl" && (System.Runtime.InteropServices.NativeLibrary.TryLoad("libdl.so.2", assembly, searchPath, out var handle) ||
                                System.Runtime.InteropServices.NativeLibrary.TryLoad("libc.so.6", assembly, searchPath, out handle))
                ? handle
                : IntPtr.Zero);
    }

    private Pkcs11Module(string path, IPkcs11Library library)
    {
        Path = path;
        Library = library;
    }

    public string Path { get; }
    public IPkcs11Library Library { get; }
    public Pkcs11InteropFactories Factories { get; } = new();

    /// <exception cref="Pkcs11Problem">Unreachable: the library is missing or C_Initialize fails.</exception>
    public static Pkcs11Module Acquire(string path)
    {
        lock (Gate)
        {
            if (!Loaded.TryGetValue(path, out var module))
            {
                if (!File.Exists(path))
                    throw new Pkcs11Problem(KeyState.Unreachable, $"the PKCS#11 module {path} does not exist; install the HSM's PKCS#11 library or correct module in [[key_store]]");
                var factories = new Pkcs11InteropFactories();
                try
                {
                    // MultiThreaded: C_Initialize with CKF_OS_LOCKING_OK, the module locks for itself.
                    module = new Pkcs11Module(path, factories.Pkcs11LibraryFactory.LoadPkcs11Library(factories, path, AppType.MultiThreaded));
                }
                catch (Exception e) when (e is Pkcs11Exception or UnmanagedException or LibraryArchitectureException or DllNotFoundException or BadImageFormatException or EntryPointNotFoundException)
                {
                    throw new Pkcs11Problem(KeyState.Unreachable, $"the PKCS#11 module {path} cannot be loaded: {Message(e)}", e);
                }
                Loaded[path] = module;
            }
            module._users++;
            return module;
        }
    }

    /// <summary>
    /// Finalizes and loads the module again, if <paramref name="module"/> is used by the caller
    /// alone: a module lists the tokens it found at C_Initialize (SoftHSM2 does), so a token that
    /// came back, or was created since, appears only then. Returns the module to use.
    /// </summary>
    public static Pkcs11Module Reload(Pkcs11Module module)
    {
        lock (Gate)
        {
            if (module._users != 1) return module; // others hold sessions on it: their handles must stay valid
            module.Release();
            return Acquire(module.Path);
        }
    }

    public void Release()
    {
        lock (Gate)
        {
            if (--_users > 0) return;
            Loaded.Remove(Path);
            try { Library.Dispose(); } // C_Finalize, then unload
            catch (Exception e) when (e is Pkcs11Exception or UnmanagedException)
            {
                // A module that fails to finalize is gone all the same; the next Acquire loads it afresh.
            }
        }
    }

    internal static string Message(Exception e) => e is Pkcs11Exception p ? $"{p.Method} returned {Pkcs11Errors.Describe(p.RV)}" : e.Message;
}
