"""Self-contained source files for diffusers' remote-code loaders.

`DiffusionPipeline.from_pretrained(..., trust_remote_code=True)` fetches a repository's pipeline module
(`<module>.py` at the root, named by `_class_name` in model_index.json) and each component's own module
(`<component>/<module>.py`), but not the files those import: diffusers' download step lists exactly those files. So
each has to be one file that imports only third-party packages. `standalone_source(cls)` writes such a file when a
pipeline is saved: the top-level statements `cls` needs, taken from its module and, through relative or
`hf_vaegan.` imports, from the modules it imports, in dependency order. Nothing is copied by hand, so the file always
matches the code that saved the weights.
"""

import ast
import importlib
import inspect
from pathlib import Path

PACKAGE = "hf_vaegan"


def _module_source(module_name: str) -> str:
    module = importlib.import_module(module_name)
    return Path(inspect.getfile(module)).read_text(encoding="utf-8")


def _is_package(module_name: str) -> bool:
    return hasattr(importlib.import_module(module_name), "__path__")


def _absolute(module_name: str, node: ast.ImportFrom) -> str | None:
    """The absolute name of the module `node` imports from, or None if it is not one of this package's."""
    if node.level == 0:
        return node.module if (node.module or "").split(".")[0] == PACKAGE else None
    package = module_name if _is_package(module_name) else module_name.rpartition(".")[0]
    for _ in range(node.level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{node.module}" if node.module else package


def _bound_names(statement: ast.stmt) -> set[str]:
    """Module-level names a top-level statement binds."""
    if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {statement.name}
    if isinstance(statement, (ast.Import, ast.ImportFrom)):
        return {(alias.asname or alias.name).split(".")[0] for alias in statement.names}
    names = set()
    for node in ast.walk(statement):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
    return names


def _used_names(statement: ast.stmt) -> set[str]:
    """Every name a statement mentions (a superset of the module-level names it needs)."""
    return {node.id for node in ast.walk(statement) if isinstance(node, ast.Name)}


class _Module:
    """One module's top-level statements, indexed by the names they bind."""

    def __init__(self, name: str):
        self.name = name
        self.source = _module_source(name)
        tree = ast.parse(self.source)
        body = tree.body
        if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant):
            body = body[1:]  # the module docstring
        self.future = [s for s in body if isinstance(s, ast.ImportFrom) and s.module == "__future__"]
        self.statements = [s for s in body if s not in self.future]
        self.binders: dict[str, list[int]] = {}
        for index, statement in enumerate(self.statements):
            for name in _bound_names(statement):
                self.binders.setdefault(name, []).append(index)

    def internal_import(self, statement: ast.stmt) -> str | None:
        if isinstance(statement, ast.ImportFrom):
            return _absolute(self.name, statement)
        if isinstance(statement, ast.Import) and any(a.name.split(".")[0] == PACKAGE for a in statement.names):
            raise ValueError(f"{self.name}: `import {PACKAGE}...` cannot be inlined; use `from ... import name`.")
        return None


def _resolve(modules: dict[str, _Module], module_name: str, name: str) -> tuple[str, str]:
    """Where `from module_name import name` finds its definition: (defining module, name there)."""
    while True:
        module = modules.setdefault(module_name, _Module(module_name))
        indices = module.binders.get(name)
        if not indices:
            raise ValueError(f"{module_name} defines no `{name}`.")
        statement = module.statements[indices[-1]]
        target = module.internal_import(statement)
        if target is None:
            return module_name, name
        alias = next(a for a in statement.names if (a.asname or a.name) == name)
        if _is_package(target) and alias.name not in modules.setdefault(target, _Module(target)).binders:
            raise ValueError(f"{module_name} imports the module {target}.{alias.name}; import names from it.")
        module_name, name = target, alias.name


def _check_no_nested_imports(module_name: str, statement: ast.stmt) -> None:
    """An import of this package inside a function or class would survive inlining and fail without the package."""
    for node in ast.walk(statement):
        nested = isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith(PACKAGE))
        if nested or (isinstance(node, ast.Import) and any(a.name.startswith(PACKAGE) for a in node.names)):
            where = getattr(statement, "name", f"line {statement.lineno}")
            raise ValueError(f"{module_name} imports from {PACKAGE} inside `{where}`: import it at the top.")


def _import_line(statement: ast.Import | ast.ImportFrom, local: str) -> str:
    """The one-name import of `statement` that binds `local`."""
    for alias in statement.names:
        if (alias.asname or alias.name).split(".")[0] == local:
            rename = f" as {alias.asname}" if alias.asname else ""
            if isinstance(statement, ast.Import):
                return f"import {alias.name}{rename}"
            return f"from {statement.module} import {alias.name}{rename}"
    raise AssertionError(local)


def _definition_code(module: _Module, statement: ast.stmt) -> str:
    code = ast.get_source_segment(module.source, statement, padded=False)
    decorators = getattr(statement, "decorator_list", [])
    if decorators:
        first = min(decorator.lineno for decorator in decorators)
        code = "\n".join(module.source.splitlines()[first - 1 : statement.lineno - 1]) + "\n" + code
    return code


def standalone_source(cls: type, header: str) -> str:
    """The source of a module that defines `cls` and imports nothing of this package (see the module docstring).

    `header` becomes its docstring. Raises `ValueError` when two inlined modules give one name different meanings.
    """
    modules: dict[str, _Module] = {}
    included: dict[str, set[int]] = {}  # module -> indices of its definitions to keep
    imports: dict[str, set[str]] = {}  # module -> its third-party imports to keep, one name each
    aliases: dict[str, list[str]] = {}  # module -> `alias = name` lines its renaming internal imports need
    depends: dict[str, set[str]] = {}  # module -> modules it takes definitions from
    pending, seen = [(cls.__module__, cls.__name__)], set()
    while pending:
        module_name, name = pending.pop()
        if (module_name, name) in seen:
            continue
        seen.add((module_name, name))
        module = modules.setdefault(module_name, _Module(module_name))
        for index in module.binders.get(name, []):
            statement = module.statements[index]
            target = module.internal_import(statement)
            if target is not None:
                alias = next(a for a in statement.names if (a.asname or a.name) == name)
                where, defined = _resolve(modules, target, alias.name)
                pending.append((where, defined))
                depends.setdefault(module_name, set()).add(where)
                if name != defined:
                    aliases.setdefault(module_name, []).append(f"{name} = {defined}")
            elif isinstance(statement, (ast.Import, ast.ImportFrom)):
                imports.setdefault(module_name, set()).add(_import_line(statement, name))
            else:
                _check_no_nested_imports(module_name, statement)
                included.setdefault(module_name, set()).add(index)
                pending.extend((module_name, used) for used in _used_names(statement) if used in module.binders)

    order: list[str] = []

    def visit(module_name: str, path: tuple[str, ...] = ()) -> None:
        if module_name in order:
            return
        if module_name in path:
            raise ValueError(f"circular imports cannot be inlined: {' -> '.join((*path, module_name))}")
        for dependency in sorted(depends.get(module_name, set()) - {module_name}):
            visit(dependency, (*path, module_name))
        order.append(module_name)

    for module_name in sorted({*included, *imports, *aliases}):
        visit(module_name)

    meanings: dict[str, tuple[str, str]] = {}  # name -> (module, the code binding it), to catch clashes

    def bind(name: str, module_name: str, code: str) -> None:
        previous = meanings.setdefault(name, (module_name, code))
        if previous[1] != code:
            raise ValueError(f"`{name}` means different things in {previous[0]} and {module_name}.")

    future = sorted({ast.unparse(s) for m in order for s in modules[m].future})
    import_lines = []
    for module_name in order:
        for line in sorted(imports.get(module_name, ())):
            bind(line.split()[-1].split(".")[0], module_name, line)
            if line not in import_lines:
                import_lines.append(line)
    parts = [f'"""{header}"""', *future, "\n".join(import_lines)]
    for module_name in order:
        module = modules[module_name]
        chunks = list(aliases.get(module_name, ()))
        for index in sorted(included.get(module_name, ())):
            code = _definition_code(module, module.statements[index])
            for name in _bound_names(module.statements[index]):
                bind(name, module_name, code)
            chunks.append(code)
        if chunks:
            parts.append(f"# from {module_name}\n" + "\n\n".join(chunks))
    return "\n\n\n".join(part for part in parts if part) + "\n"


def module_stem(cls: type) -> str:
    """The file name (without .py) a class's standalone module is saved under: its own module's."""
    return cls.__module__.rpartition(".")[2]
